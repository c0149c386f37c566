package config

import "flag"

// Flags are the command-line flags of `cradle daemon` (and of `cradle
// config` and `cradle check`, which load the configuration the same way):
// the config file and the Overrides. Both binaries, the CLI (pflag) and the
// lean daemon `cradled` (flag), register them from here.
type Flags struct {
	File string
	Overrides
}

// Register defines the flags on fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.File, "config", "", "config file (default "+DefaultFile+"; drop-ins from <file without .toml>.d/*.toml)")
	fs.StringVar(&f.Socket, "socket", "", "CRI socket path (overrides the config's socket)")
	fs.StringVar(&f.Root, "root", "", "root directory for persistent data (overrides root)")
	fs.StringVar(&f.State, "state", "", "state directory for runtime state (overrides state)")
	fs.StringVar(&f.LogLevel, "log-level", "", "debug, info, warn or error (overrides log_level)")
}

// Args renders the flags that are set back as arguments, for handing them
// on to another process.
func (f *Flags) Args() []string {
	var args []string
	for _, kv := range [][2]string{
		{"config", f.File}, {"socket", f.Socket}, {"root", f.Root}, {"state", f.State}, {"log-level", f.LogLevel},
	} {
		if kv[1] != "" {
			args = append(args, "--"+kv[0]+"="+kv[1])
		}
	}
	return args
}

// Load loads the configuration these flags name.
func (f *Flags) Load() (*Loaded, error) { return Load(f.File, f.Overrides) }
