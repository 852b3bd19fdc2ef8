package deploy

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// digestRE is a reference pinned to one image: its sha256 digest.
var digestRE = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)

// checkPinned requires a Dockerfile base image to name its digest and,
// for people, its tag: name:tag@sha256:…
func checkPinned(ref string) error {
	if ref == "scratch" {
		return nil
	}
	if !digestRE.MatchString(ref) {
		return fmt.Errorf("not pinned by digest (name:tag@sha256:…)")
	}
	name, _, _ := strings.Cut(ref, "@")
	if _, tag, ok := strings.Cut(name[strings.LastIndex(name, "/")+1:], ":"); !ok || tag == "" || tag == "latest" {
		return fmt.Errorf("no tag beside the digest")
	}
	return nil
}

// imageLineRE is a manifest's image line: the reference, then a comment
// naming the tag it was read from ("image: x@sha256:… # x:1.2.3").
var imageLineRE = regexp.MustCompile(`^\s*(?:-\s+)?image:\s*(\S+)\s*(?:#\s*(\S+))?`)

// TestManifestImagesPinnedByDigest: every third-party image in the
// manifests is pinned by digest, with its tag in a comment beside it. The
// one exception is the app's own image, the base's placeholder
// "locallibrary", which each overlay's images: entry replaces with a
// release (set its digest at deploy time, deploy/README.md).
func TestManifestImagesPinnedByDigest(t *testing.T) {
	var files []string
	err := filepath.WalkDir("k8s", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".yaml") {
			files = append(files, path)
		}
		return err
	})
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests under k8s/ (err %v)", err)
	}
	seen := 0
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			m := imageLineRE.FindStringSubmatch(sc.Text())
			if m == nil || m[1] == "locallibrary" {
				continue
			}
			seen++
			ref, tagComment := m[1], m[2]
			name, _, _ := strings.Cut(ref, "@")
			switch {
			case !digestRE.MatchString(ref):
				t.Errorf("%s:%d: image %s is not pinned by digest (name@sha256:… # name:tag)", path, n, ref)
			case !strings.HasPrefix(tagComment, name+":"):
				t.Errorf("%s:%d: image %s has no comment naming its tag (# %s:<tag>)", path, n, ref, name)
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if seen == 0 {
		t.Fatal("no image lines found: the test proves nothing")
	}
}
