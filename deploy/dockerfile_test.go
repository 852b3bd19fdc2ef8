package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// parseDockerfile parses a Dockerfile with BuildKit's own parser, failing on
// a syntax error, an unknown instruction or a lint warning.
func parseDockerfile(src []byte) ([]instructions.Stage, []instructions.ArgCommand, error) {
	ast, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		return nil, nil, err
	}
	var warnings []string
	for _, w := range ast.Warnings {
		warnings = append(warnings, w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		warnings = append(warnings, fmt.Sprintf("line %d: %s: %s", line, rule, msg))
	}})
	stages, args, err := instructions.Parse(ast.AST, lint)
	if err != nil {
		return nil, nil, err
	}
	// RUN --mount flags are read when the command is expanded; keep every
	// word as written, so a bad mount spec fails here.
	asWritten := func(word string) (string, error) { return word, nil }
	for _, s := range stages {
		for _, c := range s.Commands {
			if run, ok := c.(*instructions.RunCommand); ok {
				if err := run.Expand(asWritten); err != nil {
					return nil, nil, fmt.Errorf("line %d: %w", run.Location()[0].Start.Line, err)
				}
			}
		}
	}
	if len(warnings) > 0 {
		return nil, nil, fmt.Errorf("lint: %s", strings.Join(warnings, "; "))
	}
	return stages, args, nil
}

func TestParseDockerfileRejectsBrokenFiles(t *testing.T) {
	tests := []struct {
		name, src string
	}{
		{"unknown instruction", "FROM scratch\nCOPYY a /a\n"},
		{"no FROM", "RUN true\n"},
		{"bad RUN flag", "FROM scratch\nRUN --mount=type=cachee,target=/x true\n"},
		{"lint: FROM/AS casing", "FROM golang:1.26 as build\nFROM scratch\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := parseDockerfile([]byte(tt.src)); err == nil {
				t.Fatalf("accepted:\n%s", tt.src)
			}
		})
	}
}

// TestDockerfile reads deploy/Dockerfile the way BuildKit does (no Docker
// engine is needed) and checks what the image promises: the production
// build, a cached module download, and a non-root distroless final stage.
func TestDockerfile(t *testing.T) {
	src, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	stages, _, err := parseDockerfile(src)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a final one", len(stages))
	}

	t.Run("go version matches go.mod", func(t *testing.T) {
		goMod, err := os.ReadFile(filepath.Join("..", "go.mod"))
		if err != nil {
			t.Skipf("no root go.mod (run go -C deploy test from a full checkout of the repository): %v", err)
		}
		m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(goMod)
		if m == nil {
			t.Fatal("root go.mod has no go line")
		}
		// The tag beside the build stage's digest: golang:<version>@sha256:…
		ref, _, _ := strings.Cut(stages[0].BaseName, "@")
		version := strings.TrimPrefix(ref, "golang:")
		// The golang images set GOTOOLCHAIN=local: an older toolchain than
		// go.mod asks for fails the build.
		if version != string(m[1]) {
			t.Errorf("build stage is FROM %s, root go.mod says go %s", stages[0].BaseName, m[1])
		}
	})

	t.Run("base images pinned by digest", func(t *testing.T) {
		for _, st := range stages {
			if err := checkPinned(st.BaseName); err != nil {
				t.Errorf("FROM %s: %v", st.BaseName, err)
			}
		}
	})

	build := stages[0]
	t.Run("build stage", func(t *testing.T) {
		if !strings.HasPrefix(build.BaseName, "golang:") {
			t.Errorf("build stage is FROM %s, want golang", build.BaseName)
		}
		var goBuild *instructions.RunCommand
		var caches []string
		for _, c := range build.Commands {
			run, ok := c.(*instructions.RunCommand)
			if !ok {
				continue
			}
			line := strings.Join(run.CmdLine, " ")
			for _, m := range instructions.GetMounts(run) {
				if m.Type == instructions.MountTypeCache && strings.Contains(line, "go build") {
					caches = append(caches, m.Target)
				}
			}
			if strings.Contains(line, "go build") {
				goBuild = run
			}
		}
		if goBuild == nil {
			t.Fatal("no RUN with go build")
		}
		line := strings.Join(goBuild.CmdLine, " ")
		for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-tags noembeddeddb", `-ldflags "-s -w"`, "-o /out/locallibrary ."} {
			if !strings.Contains(line, want) {
				t.Errorf("go build line lacks %s: %s", want, line)
			}
		}
		for _, want := range []string{"/go/pkg/mod", "/root/.cache/go-build"} {
			if !slices.Contains(caches, want) {
				t.Errorf("go build has no cache mount on %s (has %v)", want, caches)
			}
		}
	})

	final := stages[len(stages)-1]
	t.Run("final stage", func(t *testing.T) {
		if !strings.HasPrefix(final.BaseName, "gcr.io/distroless/static-debian12:nonroot@") && final.BaseName != "scratch" {
			t.Errorf("final stage is FROM %s, want gcr.io/distroless/static-debian12:nonroot@sha256:… or scratch", final.BaseName)
		}
		var user, entrypoint string
		var exposed []string
		env := map[string]string{}
		var copied bool
		for _, c := range final.Commands {
			switch c := c.(type) {
			case *instructions.UserCommand:
				user = c.User
			case *instructions.EnvCommand:
				for _, kv := range c.Env {
					env[kv.Key] = kv.Value
				}
			case *instructions.ExposeCommand:
				exposed = append(exposed, c.Ports...)
			case *instructions.EntrypointCommand:
				if c.PrependShell {
					t.Error("ENTRYPOINT is in shell form; distroless has no shell")
				}
				entrypoint = strings.Join(c.CmdLine, " ")
			case *instructions.CopyCommand:
				copied = copied || c.From == build.Name && slices.Contains(c.SourcePaths, "/out/locallibrary") && c.DestPath == "/locallibrary"
			case *instructions.RunCommand:
				t.Errorf("final stage runs %q; it has no shell", c.CmdLine)
			}
		}
		if user != "65532:65532" && user != "65532" {
			t.Errorf("USER %q, want the numeric 65532 so runAsNonRoot can verify it", user)
		}
		if !slices.Contains(exposed, "8080") {
			t.Errorf("EXPOSE %v, want 8080", exposed)
		}
		// The binary's defaults are loopback: in a container that is
		// unreachable, so the image names every interface itself.
		for name, port := range map[string]string{"LOCALLIBRARY_HTTP_ADDR": "8080", "LOCALLIBRARY_METRICS_ADDR": "9090"} {
			if got := env[name]; got != ":"+port && got != "0.0.0.0:"+port && got != "[::]:"+port {
				t.Errorf("ENV %s=%q, want every interface on port %s (the binary's default is loopback)", name, got, port)
			}
		}
		if entrypoint != "/locallibrary" {
			t.Errorf("ENTRYPOINT %q, want [\"/locallibrary\"]", entrypoint)
		}
		if !copied {
			t.Error("the binary is not copied from the build stage to /locallibrary")
		}
	})

	t.Run("ignore file", func(t *testing.T) {
		ignore, err := os.ReadFile("Dockerfile.dockerignore")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(ignore), "\n")
		for _, want := range []string{".git", "deploy", "**/*_test.go"} {
			if !slices.Contains(lines, want) {
				t.Errorf("Dockerfile.dockerignore does not leave out %s", want)
			}
		}
	})
}
