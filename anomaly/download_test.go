package anomaly

import "testing"

func TestDownloads(t *testing.T) {
	d, err := NewDownloads([]string{"/files/*", "*.pdf", "/exports/20??/*.csv"}, []string{"application/octet-stream", "application/zip"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, ctype, disp string
		want              bool
	}{
		{"/files/a", "", "", true},
		{"/files/a/b/c.bin", "", "", true},
		{"/files", "", "", false},
		{"/filesystem/a", "", "", false},
		{"/s/report.pdf", "", "", true},
		{"/s/report.PDF", "", "", false},
		{"/exports/2026/x.csv", "", "", true},
		{"/exports/2026/sub/x.csv", "", "", false},
		{"/page", "text/html", "", false},
		{"/page", "application/zip; charset=binary", "", true},
		{"/page", "text/html", "attachment; filename=\"a.txt\"", true},
		{"/page", "text/html", "ATTACHMENT", true},
		{"/page", "text/html", "inline", false},
	} {
		if got := d.Match(tc.path, tc.ctype, tc.disp); got != tc.want {
			t.Errorf("Match(%q, %q, %q) = %v, want %v", tc.path, tc.ctype, tc.disp, got, tc.want)
		}
	}
	var none *Downloads
	if none.Match("/x.pdf", "", "") || !none.Match("/x", "", "attachment") {
		t.Error("nil Downloads: only attachments count")
	}
	if _, err := NewDownloads([]string{"[bad"}, nil); err == nil {
		t.Error("bad pattern accepted")
	}
	if _, err := NewDownloads(nil, []string{"not a type/"}); err == nil {
		t.Error("bad content type accepted")
	}
}

func FuzzDownloadMatch(f *testing.F) {
	f.Add("/files/*", "/files/a", "attachment; filename=x")
	f.Add("*.pdf", "/a.pdf", "inline")
	f.Fuzz(func(t *testing.T, pat, p, disp string) {
		d, err := NewDownloads([]string{pat}, nil)
		if err != nil {
			return
		}
		_ = d.Match(p, disp, disp)
	})
}
