package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/dux-io/dux/client"
	"github.com/dux-io/dux/scheduler"
)

func init() { clientCommands = append(clientCommands, newComponentCmd, newAllocCmd) }

func newComponentCmd() *cobra.Command {
	cmd := groupCmd("component", "Run containers on the cluster: apply, list and remove components",
		newComponentApplyCmd(), newComponentLsCmd(), newComponentRmCmd())
	cmd.Long = `A component is a container image the cluster runs as a number of replicas,
stored at /components/<name>. The leader places its replicas on hosts and
every host's executor runs those placed on it on its Docker Engine.`
	return cmd
}

// readSpec reads a component spec from a file (or "-" for stdin), in JSON
// or YAML, and returns it as JSON with its name.
func readSpec(path string, stdin io.Reader) (name string, spec []byte, err error) {
	var raw []byte
	if path == "-" {
		raw, err = io.ReadAll(stdin)
	} else {
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return "", nil, usageError{fmt.Errorf("read %s: %w", path, err)}
	}
	spec = raw
	if ext := strings.ToLower(filepath.Ext(path)); ext != ".json" && !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
		if spec, err = yaml.YAMLToJSON(raw); err != nil {
			return "", nil, usageError{fmt.Errorf("%s: not JSON or YAML: %v", path, err)}
		}
	}
	var head struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(spec, &head); err != nil {
		return "", nil, usageError{fmt.Errorf("%s: %v", path, err)}
	}
	if head.Name == "" {
		return "", nil, usageError{fmt.Errorf("%s: the spec needs a \"name\"", path)}
	}
	if _, err := scheduler.ParseComponent(head.Name, spec); err != nil {
		return "", nil, usageError{fmt.Errorf("%s: %v", path, err)}
	}
	return head.Name, spec, nil
}

func newComponentApplyCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "apply FILE",
		Short: "Create or update a component from a JSON or YAML spec (- for stdin)",
		Example: `  duxd component apply web.yaml
  echo '{"name":"web","image":"nginx:1.27","replicas":3}' | duxd component apply -`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.prepare(cmd); err != nil {
				return err
			}
			name, spec, err := readSpec(args[0], cmd.InOrStdin())
			if err != nil {
				return err
			}
			ctx, c, done, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			rev, err := c.Put(ctx, scheduler.ComponentsPrefix+name, spec)
			if err != nil {
				return f.fail(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "component %s applied at revision %d\n", name, rev)
			return nil
		},
	}
	f.register(cmd, defaultClientTimeout, false)
	return cmd
}

// componentRow is one line of `component ls`.
type componentRow struct {
	Name    string                     `json:"name"`
	Image   string                     `json:"image"`
	Spec    *scheduler.Component       `json:"spec,omitempty"`
	Status  *scheduler.ComponentStatus `json:"status,omitempty"`
	Invalid string                     `json:"invalid,omitempty"`
}

func newComponentLsCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List components: desired, placed and running replicas",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.prepare(cmd); err != nil {
				return err
			}
			ctx, c, done, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			specs, rev, err := c.ListAll(ctx, scheduler.ComponentsPrefix)
			if err != nil {
				return f.fail(err)
			}
			byName, err := listJSON[scheduler.ComponentStatus](ctx, c, scheduler.ComponentStatusPrefix)
			if err != nil {
				return f.fail(err)
			}
			var rows []componentRow
			for _, kv := range specs {
				name := strings.TrimPrefix(kv.Key, scheduler.ComponentsPrefix)
				r := componentRow{Name: name, Status: byName[name]}
				if spec, err := scheduler.ParseComponent(name, kv.Value); err != nil {
					r.Invalid = err.Error()
				} else {
					r.Spec, r.Image = spec, spec.Image
				}
				rows = append(rows, r)
			}
			if f.output == "json" {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"revision": rev, "components": rows})
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "IMAGE", "DESIRED", "PLACED", "RUNNING", "NOTES")
			for _, r := range rows {
				desired, placed, running, notes := "-", "-", "-", ""
				if r.Spec != nil {
					desired = strconv.Itoa(r.Spec.Replicas)
				}
				if s := r.Status; s != nil {
					placed, running = strconv.Itoa(s.Placed), strconv.Itoa(s.Running)
					var parts []string
					if s.Paused {
						parts = append(parts, "paused")
					}
					if s.Failed > 0 {
						parts = append(parts, fmt.Sprintf("%d failed (duxd alloc ls says why)", s.Failed))
					}
					if s.Outdated > 0 {
						parts = append(parts, fmt.Sprintf("rolling out (%d outdated)", s.Outdated))
					}
					parts = append(parts, s.Unplaced...)
					notes = strings.Join(parts, "; ")
				}
				if r.Invalid != "" {
					notes = "invalid spec: " + r.Invalid
				}
				t.row(r.Name, r.Image, desired, placed, running, notes)
			}
			return t.flush()
		},
	}
	f.register(cmd, defaultClientTimeout, true)
	return cmd
}

func newComponentRmCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a component: its replicas are stopped",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.prepare(cmd); err != nil {
				return err
			}
			ctx, c, done, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			_, deleted, err := c.Delete(ctx, scheduler.ComponentsPrefix+args[0])
			if err != nil {
				return f.fail(err)
			}
			if deleted == 0 {
				return errors.New("no component " + args[0])
			}
			fmt.Fprintf(cmd.OutOrStdout(), "component %s removed; its replicas are being stopped\n", args[0])
			return nil
		},
	}
	f.register(cmd, defaultClientTimeout, false)
	return cmd
}

// allocRow is one line of `alloc ls`.
type allocRow struct {
	scheduler.AllocationRecord
	Status *scheduler.AllocStatus `json:"status,omitempty"`
}

func newAllocCmd() *cobra.Command {
	return groupCmd("alloc", "Inspect allocations: the replicas placed on hosts", newAllocLsCmd())
}

func newAllocLsCmd() *cobra.Command {
	var f clientFlags
	var host, component string
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List allocations with their observed state",
		Example: `  duxd alloc ls
  duxd alloc ls --host node-2 --component web`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.prepare(cmd); err != nil {
				return err
			}
			ctx, c, done, err := f.connect(cmd)
			if err != nil {
				return err
			}
			defer done()
			prefix := scheduler.AllocationsPrefix
			if component != "" {
				prefix += component + "/"
			}
			allocs, rev, err := c.ListAll(ctx, prefix)
			if err != nil {
				return f.fail(err)
			}
			byID, err := listJSON[scheduler.AllocStatus](ctx, c, scheduler.AllocStatusPrefix)
			if err != nil {
				return f.fail(err)
			}
			var rows []allocRow
			for _, kv := range allocs {
				var r allocRow
				if json.Unmarshal(kv.Value, &r.AllocationRecord) != nil || (host != "" && r.Host != host) {
					continue
				}
				r.Status = byID[r.ID]
				r.Run = nil
				rows = append(rows, r)
			}
			sort.SliceStable(rows, func(i, j int) bool {
				if rows[i].Component != rows[j].Component {
					return rows[i].Component < rows[j].Component
				}
				return rows[i].Host < rows[j].Host
			})
			if f.output == "json" {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"revision": rev, "allocations": rows})
			}
			t := newTable(cmd.OutOrStdout(), "ID", "COMPONENT", "HOST", "STATE", "CONTAINER", "SPEC", "REASON")
			for _, r := range rows {
				state, ctr, reason := "unreported", "", ""
				if s := r.Status; s != nil {
					state, ctr, reason = s.State, s.ContainerID, s.Reason
					if s.State == scheduler.StateExited {
						state = fmt.Sprintf("exited (%d)", s.ExitCode)
					}
				}
				t.row(r.ID, r.Component, r.Host, state, ctr[:min(12, len(ctr))], r.Spec, reason)
			}
			return t.flush()
		},
	}
	f.register(cmd, defaultClientTimeout, true)
	cmd.Flags().StringVar(&host, "host", "", "only the allocations of this host")
	cmd.Flags().StringVar(&component, "component", "", "only the allocations of this component")
	return cmd
}

// listJSON reads the JSON values under prefix, by the last segment of
// their keys (a component's name, an allocation's ID); a value that does
// not decode is left out.
func listJSON[T any](ctx context.Context, c *client.Client, prefix string) (map[string]*T, error) {
	kvs, _, err := c.ListAll(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*T, len(kvs))
	for _, kv := range kvs {
		v := new(T)
		if json.Unmarshal(kv.Value, v) == nil {
			out[strings.TrimPrefix(kv.Key, prefix)] = v
		}
	}
	return out, nil
}
