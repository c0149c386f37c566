package metrics

import "github.com/prometheus/client_golang/prometheus"

// The states every scrape reports, zero or not, so a series never vanishes
// when its last object does.
var (
	podStates       = []string{"ready", "notready"}
	containerStates = []string{"created", "running", "exited"}
)

// stateCollector reads the gauges from the managers' memory at scrape time.
type stateCollector struct {
	src                      Sources
	pods, containers, monits *prometheus.Desc
}

func newStateCollector(src Sources) *stateCollector {
	return &stateCollector{
		src:        src,
		pods:       prometheus.NewDesc("cradle_pods", "Pod sandboxes, by state.", []string{"state"}, nil),
		containers: prometheus.NewDesc("cradle_containers", "Containers, by state.", []string{"state"}, nil),
		monits:     prometheus.NewDesc("cradle_monitor_processes", "conmon processes the daemon supervises.", nil, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pods
	ch <- c.containers
	ch <- c.monits
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src.Pods != nil {
		gaugeByState(ch, c.pods, podStates, c.src.Pods())
	}
	if c.src.Containers != nil {
		gaugeByState(ch, c.containers, containerStates, c.src.Containers())
	}
	if c.src.Monitors != nil {
		ch <- prometheus.MustNewConstMetric(c.monits, prometheus.GaugeValue, float64(c.src.Monitors()))
	}
}

func gaugeByState(ch chan<- prometheus.Metric, d *prometheus.Desc, known []string, counts map[string]int) {
	for _, s := range known {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(counts[s]), s)
	}
	for s, n := range counts {
		if !contains(known, s) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(n), s)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
