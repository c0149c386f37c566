package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func newStatsPodCommand() *cobra.Command {
	var f sampleFlags
	cmd := criCommand(&cobra.Command{
		Use:   "statsp [flags] [POD]",
		Short: "Show the resource usage of pods",
		Long: `Show CPU and memory usage of pod sandboxes, and their network traffic when
the runtime reports it, from the CRI's ListPodSandboxStats. The table's CPU %
is the CPU time used between two samples --seconds apart (100% is one core);
NET RX and NET TX are the bytes the pod's default interface moved so far. The
json and yaml outputs print one sample as the runtime gave it.`,
		Example: `  cradle statsp
  cradle statsp -o yaml 9c1e`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			labels, err := f.check(args)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			rt, err := clientFor(cmd).Runtime(ctx)
			if err != nil {
				return err
			}
			filter := &runtimeapi.PodSandboxStatsFilter{LabelSelector: labels}
			if f.id != "" {
				if filter.Id, err = resolvePodID(ctx, rt, f.id); err != nil {
					return err
				}
			}
			v := &podStatsView{rt: rt, filter: filter, flags: &f}
			out := cmd.OutOrStdout()
			return watchLoop(ctx, out, f.watch, clientFor(cmd).env.isTerminal(out), v.show)
		},
	})
	f.register(cmd.Flags(), "pod")
	return cmd
}

type podStatsView struct {
	rt     internalapi.RuntimeService
	filter *runtimeapi.PodSandboxStatsFilter
	flags  *sampleFlags
}

func (v *podStatsView) list(ctx context.Context) ([]*runtimeapi.PodSandboxStats, error) {
	stats, err := v.rt.ListPodSandboxStats(ctx, v.filter)
	if err != nil {
		return nil, fmt.Errorf("list pod sandbox stats: %w", rpcError(err))
	}
	slices.SortFunc(stats, func(a, b *runtimeapi.PodSandboxStats) int {
		return cmp.Compare(a.GetAttributes().GetId(), b.GetAttributes().GetId())
	})
	return stats, nil
}

func (v *podStatsView) show(ctx context.Context, w io.Writer) error {
	first, err := v.list(ctx)
	if err != nil {
		return err
	}
	if v.flags.output != formatTable {
		return writeProto(w, &runtimeapi.ListPodSandboxStatsResponse{Stats: first}, v.flags.output)
	}
	cur, prev, err := secondSample(ctx, v.flags.seconds, first, v.list, func(s *runtimeapi.PodSandboxStats) string { return s.GetAttributes().GetId() })
	if err != nil {
		return err
	}
	// Network columns only when some pod has them: host-network pods and
	// runtimes that do not measure traffic would show a column of zeros.
	network := slices.ContainsFunc(cur, func(s *runtimeapi.PodSandboxStats) bool {
		return s.GetLinux().GetNetwork().GetDefaultInterface() != nil
	})
	t := newTable(w)
	header := []string{"POD", "POD ID", "CPU %", "MEM"}
	if network {
		header = append(header, "NET RX", "NET TX")
	}
	t.row(header...)
	for _, s := range cur {
		linux := s.GetLinux()
		if linux.GetCpu().GetUsageCoreNanoSeconds().GetValue() == 0 && linux.GetMemory().GetWorkingSetBytes().GetValue() == 0 {
			continue // no data: not running, or not a Linux pod
		}
		old, ok := prev[s.GetAttributes().GetId()]
		if !ok {
			continue // appeared between the samples: no rate yet
		}
		row := []string{s.GetAttributes().GetMetadata().GetName(), truncateID(s.GetAttributes().GetId()),
			cpuPercent(old.GetLinux().GetCpu(), linux.GetCpu()), statSize(linux.GetMemory().GetWorkingSetBytes().GetValue())}
		if network {
			row = append(row, "-", "-")
			if nic := linux.GetNetwork().GetDefaultInterface(); nic != nil {
				row[4], row[5] = statSize(nic.GetRxBytes().GetValue()), statSize(nic.GetTxBytes().GetValue())
			}
		}
		t.row(row...)
	}
	return t.flush()
}
