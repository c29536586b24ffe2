package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConfigurationDocs fails when docs/configuration.md no longer matches
// the flags; `make docs` regenerates it.
func TestConfigurationDocs(t *testing.T) {
	want, err := configDocs()
	require.NoError(t, err)
	got, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	require.NoError(t, err)
	require.Equal(t, want, string(got), "docs/configuration.md is stale: run `make docs` and commit the result")
}
