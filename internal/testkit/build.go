package testkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// RepoRoot is the folder of the main module's go.mod at or above the
// working directory (from deploy/, whose go.mod is another module's, it
// goes on up).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if raw, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.Contains(string(raw), "module github.com/locallibrary/locallibrary\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the locallibrary repository (no go.mod of github.com/locallibrary/locallibrary above)")
		}
		dir = parent
	}
}

// OutDir resolves a tool's output folder: relative to the repository's
// root (returned too) when not absolute, and created if missing.
func OutDir(dir string) (root, out string, err error) {
	if root, err = RepoRoot(); err != nil {
		return "", "", err
	}
	out = dir
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	return root, out, os.MkdirAll(out, 0o755)
}

// BuildService compiles the service in src (the repository's root, or a
// copy of it) as it is deployed: the production build, without the
// embedded demo database.
func BuildService(ctx context.Context, src, bin string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "noembeddeddb", "-o", bin, ".")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build -tags noembeddeddb (in %s): %w\n%s", src, err, out)
	}
	return nil
}
