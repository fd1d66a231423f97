package main

import "errors"

// runEval replays a labelled corpus through the detection engine.
func runEval(args []string) error {
	return errors.New("not built yet: the detection engine is the subject of the detection issue")
}
