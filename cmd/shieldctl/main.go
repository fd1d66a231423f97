// Command shieldctl is shield's command-line tool: it replays labelled
// query corpora through the detection engine (eval) and drives a running
// resolver's management API.
package main

import (
	"fmt"
	"os"
)

const usage = `usage: shieldctl COMMAND [ARGS]

commands:
  eval        replay a labelled query corpus through the detection engine
  status, explain, quarantine, release, blocks, block, unblock, audit,
  verdicts, clear, promote
              call the management API of a running resolver

Run "shieldctl COMMAND -h" for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "eval":
		err = runEval(args)
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
		return
	default:
		var ok bool
		ok, err = runAPI(cmd, args)
		if !ok {
			fmt.Fprintf(os.Stderr, "shieldctl: unknown command %q\n\n%s", cmd, usage)
			os.Exit(2)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "shieldctl %s: %v\n", cmd, err)
		os.Exit(1)
	}
}
