package sandbox

import (
	"sync"
	"time"
)

// podCounts is the tests' Observer.
type podCounts struct {
	mu        sync.Mutex
	ready     []time.Duration
	recovered map[string]int
}

func (c *podCounts) PodReady(took time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ready = append(c.ready, took)
}

func (c *podCounts) Recovered(kind, result string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.recovered == nil {
		c.recovered = map[string]int{}
	}
	c.recovered[kind+" "+result]++
}

func (c *podCounts) get() ([]time.Duration, map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := map[string]int{}
	for k, v := range c.recovered {
		r[k] = v
	}
	return append([]time.Duration(nil), c.ready...), r
}
