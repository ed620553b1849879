//go:build !race

package policy

// raceEnabled: see auditjson_race_test.go.
const raceEnabled = false
