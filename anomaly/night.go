package anomaly

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // time zones must not depend on the host's tzdata
)

// ErrBadNight reports a night window that is not "HH:MM-HH:MM".
var ErrBadNight = errors.New("night window must be HH:MM-HH:MM")

// Night is a daily window of wall-clock time in a time zone, such as
// 22:00-06:00. It may cross midnight. Because it is judged on the wall
// clock (t.In(zone)), it follows daylight-saving changes.
type Night struct {
	Start, End int // minutes after local midnight; Start != End
	Zone       *time.Location
}

// ParseNight parses "HH:MM-HH:MM" for zone (nil means UTC).
func ParseNight(s string, zone *time.Location) (Night, error) {
	if zone == nil {
		zone = time.UTC
	}
	a, b, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return Night{}, fmt.Errorf("parse night %q: %w", s, ErrBadNight)
	}
	start, err := parseClock(a)
	if err != nil {
		return Night{}, fmt.Errorf("parse night %q: %w", s, err)
	}
	end, err := parseClock(b)
	if err != nil {
		return Night{}, fmt.Errorf("parse night %q: %w", s, err)
	}
	if start == end {
		return Night{}, fmt.Errorf("parse night %q: empty window: %w", s, ErrBadNight)
	}
	return Night{Start: start, End: end, Zone: zone}, nil
}

func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || len(h) == 0 || len(h) > 2 || len(m) != 2 {
		return 0, ErrBadNight
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 24 || mm < 0 || mm > 59 || (hh == 24 && mm != 0) {
		return 0, ErrBadNight
	}
	return hh*60 + mm, nil
}

// Contains reports whether t falls inside the window, on the wall clock of
// the night's zone. The zero Night contains nothing.
func (n Night) Contains(t time.Time) bool {
	if n.Zone == nil || n.Start == n.End {
		return false
	}
	lt := t.In(n.Zone)
	m := lt.Hour()*60 + lt.Minute()
	if n.Start < n.End {
		return m >= n.Start && m < n.End
	}
	return m >= n.Start || m < n.End
}

// String renders the window as it is written in configuration.
func (n Night) String() string {
	return fmt.Sprintf("%02d:%02d-%02d:%02d", n.Start/60, n.Start%60, n.End/60, n.End%60)
}
