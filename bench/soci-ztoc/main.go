// soci-ztoc: one gzip layer → its zTOC, made by soci-snapshotter's own ztoc code (what `soci create`
// writes for the layer), for bench/containerd-lazy's ours-soci row. Build with make.sh.
//
//	soci-ztoc -span 4194304 -out LAYER.ztoc LAYER.tar.gz
package main

import (
	_ "crypto/sha256" // go-digest's sha256 (soci's binaries import it the same way)
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/awslabs/soci-snapshotter/ztoc"
)

func main() {
	span := flag.Int64("span", 4<<20, "uncompressed bytes between checkpoints (soci's default: 4 MiB)")
	out := flag.String("out", "", "where the zTOC goes")
	flag.Parse()
	if flag.NArg() != 1 || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: soci-ztoc [-span N] -out FILE LAYER.tar.gz")
		os.Exit(2)
	}
	built, err := ztoc.NewBuilder("AWS SOCI CLI v0.2").BuildZtoc(flag.Arg(0), *span)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soci-ztoc:", err)
		os.Exit(1)
	}
	r, _, err := ztoc.Marshal(built)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soci-ztoc:", err)
		os.Exit(1)
	}
	f, err := os.Create(*out)
	if err == nil {
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soci-ztoc:", err)
		os.Exit(1)
	}
}
