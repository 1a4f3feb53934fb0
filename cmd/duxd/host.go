package main

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/dux-io/dux/cluster"
)

// host fills in what the agent says about its host: labels, resources,
// the gossip key and whether Docker answers.
func (f *agentFlags) host(cfg *cluster.Config) error {
	cfg.Labels = map[string]string{}
	for _, l := range f.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return fmt.Errorf("--label %q: want key=value", l)
		}
		cfg.Labels[k] = v
	}
	cfg.Resources.CPU = f.cpu
	if cfg.Resources.CPU == 0 {
		cfg.Resources.CPU = float64(runtime.NumCPU())
	}
	if f.memory != "" {
		m, err := parseBytes(f.memory)
		if err != nil {
			return fmt.Errorf("--memory %q: %w", f.memory, err)
		}
		cfg.Resources.Memory = m
	} else {
		cfg.Resources.Memory = detectMemory()
	}
	if f.encrypt != "" {
		key, err := base64.StdEncoding.DecodeString(f.encrypt)
		if err != nil {
			return fmt.Errorf("--encrypt: not base64: %v", err)
		}
		if n := len(key); n != 16 && n != 24 && n != 32 {
			return fmt.Errorf("--encrypt: key is %d bytes; want 16, 24 or 32 (duxd keygen makes one)", n)
		}
		cfg.EncryptKey = key
	}
	return nil
}

// parseBytes reads 1024, 512MiB, 8GiB, 2GB and the like.
func parseBytes(s string) (uint64, error) {
	units := []struct {
		suffix string
		mult   uint64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := uint64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("want a number of bytes with an optional unit (KiB, MiB, GiB, TiB, KB, MB, GB, TB)")
	}
	return n * mult, nil
}

// detectMemory reads MemTotal from /proc/meminfo; 0 where there is none.
func detectMemory() uint64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseUint(fields[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
