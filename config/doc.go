// Package config is the gatehouse.yaml schema (DESIGN.md, "Configuration"):
// plain Go structs, a loader, defaults and validation.
//
// Load reads the file with gopkg.in/yaml.v3 into a yaml.Node tree and decodes
// it by hand, so that every problem can name its file, line and field path
// ("gatehouse.yaml:14: routes[2].upstream: \"htp://x\": unsupported scheme"),
// unknown and duplicate keys are errors, and decoding goes on past a bad value
// to report everything at once. While decoding it records the line of every
// key it saw (Config.Line). Then, in order: ${ENV} expansion has already
// happened per scalar; defaults fill keys that were absent (never keys written
// explicitly, which Validate then judges); *_file secrets are read into their
// Secret fields; relative paths are anchored at the config file's directory;
// and Validate runs.
//
// Validate has no side effects: it neither fills defaults nor creates files,
// so a reloaded config can be checked while the old one keeps serving. Both
// return Errors, a sorted list of *FieldError usable with errors.As.
//
// This package is a leaf: it imports nothing from Gatehouse, and the feature
// packages (authn, policy, audit, anomaly) do not import it either; proxy's
// wire_<pkg>.go files translate a Config into each package's own options.
package config
