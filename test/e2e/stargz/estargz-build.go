// estargz-build: a plain tar in, an eStargz layer out, through the reference Go library (Debian's
// golang-github-containerd-stargz-snapshotter-dev). Built by local-layer.test.ts in GOPATH mode.
//
//	estargz-build IN.tar OUT.esgz CHUNK_SIZE [PRIORITIZED_FILE...]
//
// Prints the TOC digest on stdout.
package main

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/containerd/stargz-snapshotter/estargz"
)

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: estargz-build IN.tar OUT.esgz CHUNK_SIZE [PRIORITIZED_FILE...]")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3], os.Args[4:]); err != nil {
		fmt.Fprintln(os.Stderr, "estargz-build:", err)
		os.Exit(1)
	}
}

func run(in, out, chunk string, prioritized []string) error {
	chunkSize, err := strconv.Atoi(chunk)
	if err != nil {
		return err
	}
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	blob, err := estargz.Build(io.NewSectionReader(f, 0, st.Size()), estargz.WithChunkSize(chunkSize), estargz.WithPrioritizedFiles(prioritized))
	if err != nil {
		return err
	}
	defer blob.Close()
	o, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := io.Copy(o, blob); err != nil {
		o.Close()
		return err
	}
	if err := o.Close(); err != nil {
		return err
	}
	fmt.Println(blob.TOCDigest().String())
	return nil
}
