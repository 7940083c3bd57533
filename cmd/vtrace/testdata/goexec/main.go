// Command goexec runs /bin/true a few times through os/exec and exits 0.
// The realprog integration tests build it and trace it: on Linux, os/exec
// starts each child with clone(CLONE_VM|CLONE_VFORK) on the parent's stack.
package main

import (
	"fmt"
	"os"
	"os/exec"
)

// runs is how many children the program starts; the tests expect as many
// vfork events.
const runs = 3

func main() {
	for i := 0; i < runs; i++ {
		if err := exec.Command("/bin/true").Run(); err != nil {
			fmt.Fprintf(os.Stderr, "goexec: run %d: %v\n", i+1, err)
			os.Exit(1)
		}
	}
}
