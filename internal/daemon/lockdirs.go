package daemon

// LockDirs takes the root and state locks exactly as a starting daemon
// does, for tools that must not run beside a daemon nor let one start
// meanwhile (cradle check). The error names the holder's pid; release
// drops both locks.
func LockDirs(root, state string) (release func(), err error) {
	rl, err := lockRoot(root)
	if err != nil {
		return nil, err
	}
	sl, err := lockState(state)
	if err != nil {
		rl.release()
		return nil, err
	}
	return func() { sl.release(); rl.release() }, nil
}
