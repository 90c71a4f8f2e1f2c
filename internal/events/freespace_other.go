//go:build !(linux || darwin || freebsd)

package events

// freeBytes cannot read a file system's free space on this platform: the store counts as having
// room, and only its own write errors open the StoreCircuit.
func freeBytes(string) (int64, bool) { return 0, false }
