package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/gatehouse-dev/gatehouse/audit"
	"github.com/gatehouse-dev/gatehouse/proxy"
)

func init() {
	register(command{name: "audit backup", summary: "copy an audit log to a directory or S3 bucket, once (what audit.backup does while serving)", run: runAuditBackup})
}

// runAuditBackup makes one backup run: to seed a backup, or from cron
// while the proxy is stopped. Serving instances back up by themselves
// (audit.backup).
func runAuditBackup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("audit backup", stderr, "audit backup DIR --to file:///dir|s3://bucket/prefix")
	to := fs.String("to", "", "where to copy: file:///absolute/dir or s3://bucket[/prefix][?endpoint=host:port&region=R&insecure=true] (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the AWS credentials file or an IAM role)")
	pos, err := parseArgs(fs, args)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil || len(pos) != 1 || *to == "" {
		fs.Usage()
		return exitUsage
	}
	target, err := proxy.OpenBackupTarget(*to, pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "audit backup: %v\n", err)
		return exitUsage
	}
	st, err := audit.NewBackup(pos[0], target).Run(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "audit backup: %v\n", err)
		if errors.Is(err, audit.ErrBackupDiverged) {
			fmt.Fprintln(stderr, "audit backup: the target holds another log (or this one before it was lost): choose a new target; keep that copy")
		}
		return 1
	}
	fmt.Fprintf(stdout, "backed up %s: %d object(s), %d bytes uploaded, %d shredded key(s) removed\n", pos[0], st.Uploaded, st.UploadedBytes, st.Deleted)
	return 0
}
