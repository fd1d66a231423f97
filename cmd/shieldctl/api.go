package main

// runAPI runs the management API command cmd. ok is false when cmd is not
// an API command.
func runAPI(cmd string, args []string) (ok bool, err error) {
	return false, nil
}
