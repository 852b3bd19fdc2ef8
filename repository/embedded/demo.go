package embedded

import "github.com/locallibrary/locallibrary/repository"

// DemoSeed is a small catalog that seeds in a moment on the embedded engine.
func DemoSeed() repository.SeedOptions {
	return repository.SeedOptions{Authors: 40, Books: 150, CopiesPerBook: 3, Seed: 1}
}
