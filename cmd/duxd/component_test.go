package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadSpec(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	yml := write("web.yaml", "name: web\nimage: app:1\nreplicas: 3\nenv:\n  MODE: prod\nreschedule_after: 30s\n")
	name, spec, err := readSpec(yml, nil)
	if err != nil || name != "web" || !strings.Contains(string(spec), `"replicas":3`) || !strings.Contains(string(spec), `"MODE":"prod"`) {
		t.Fatalf("yaml: %s %s %v", name, spec, err)
	}
	if name, _, err := readSpec("-", strings.NewReader(`{"name":"api","image":"app:1"}`)); err != nil || name != "api" {
		t.Fatalf("stdin json: %s %v", name, err)
	}
	bad := []struct{ path, want string }{
		{write("noname.json", `{"image":"app:1"}`), `needs a "name"`},
		{write("invalid.yaml", "name: web\nreplicas: 2\n"), "image: is required"},
		{write("broken.json", `{"name":`), "unexpected end"},
		{write("tabs.yaml", "name: web\n\timage: x\n"), "not JSON or YAML"},
		{filepath.Join(dir, "missing.json"), "no such file"},
	}
	for _, b := range bad {
		_, _, err := readSpec(b.path, nil)
		var ue usageError
		if err == nil || !errors.As(err, &ue) || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: %v, want a usage error saying %q", filepath.Base(b.path), err, b.want)
		}
	}
}
