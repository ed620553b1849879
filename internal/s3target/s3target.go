// Package s3target is an S3 bucket (AWS S3 or any S3-compatible store:
// MinIO, Ceph RGW, Garage, s3rver) as the target of an audit log backup:
// it has the methods of audit.BackupTarget over github.com/minio/minio-go.
//
// The URL is s3://BUCKET[/PREFIX][?endpoint=HOST:PORT&region=R&insecure=true].
// Without endpoint it is AWS (s3.amazonaws.com). Credentials come from the
// environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY[/AWS_SESSION_TOKEN],
// or MINIO_ROOT_USER/MINIO_ROOT_PASSWORD), the AWS shared credentials file,
// or the instance's IAM role, in that order — never from the URL, which is
// logged. An S3 PUT replaces an object atomically, which is what the backup
// needs; a bucket with Object Lock (compliance mode) makes the copy WORM.
package s3target

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// ErrURL wraps every problem with a target URL.
var ErrURL = errors.New("invalid s3 URL")

// Target is one bucket and key prefix.
type Target struct {
	c      *minio.Client
	bucket string
	prefix string // "" or "dir/"
}

// Options are what a URL says.
type Options struct {
	Bucket, Prefix string
	Endpoint       string // host[:port]
	Region         string
	Insecure       bool // plain HTTP (a store on loopback)
}

// ParseURL reads s3://BUCKET[/PREFIX]?endpoint=&region=&insecure=.
func ParseURL(raw string) (Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the URL, credentials and all.
		return Options{}, fmt.Errorf("%w: not a URL", ErrURL)
	}
	if u.User != nil {
		return Options{}, fmt.Errorf("%w: credentials do not belong in the URL (it is logged): use the environment or the AWS credentials file", ErrURL)
	}
	if u.Scheme != "s3" || u.Host == "" {
		return Options{}, fmt.Errorf("%w: %q: want s3://bucket[/prefix]", ErrURL, raw)
	}
	o := Options{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/"), Endpoint: "s3.amazonaws.com"}
	if o.Prefix != "" {
		o.Prefix += "/"
	}
	for k, vs := range u.Query() {
		v := vs[0]
		switch k {
		case "endpoint":
			o.Endpoint = v
		case "region":
			o.Region = v
		case "insecure":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return Options{}, fmt.Errorf("%w: insecure=%q", ErrURL, v)
			}
			o.Insecure = b
		default:
			return Options{}, fmt.Errorf("%w: unknown parameter %q (endpoint, region, insecure)", ErrURL, k)
		}
	}
	if o.Endpoint == "" || strings.Contains(o.Endpoint, "/") {
		return Options{}, fmt.Errorf("%w: endpoint %q: want host[:port]", ErrURL, o.Endpoint)
	}
	return o, nil
}

// Open connects to the bucket a URL names (no request is made yet).
func Open(raw string) (*Target, error) {
	o, err := ParseURL(raw)
	if err != nil {
		return nil, err
	}
	creds := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{}, &credentials.EnvMinio{}, &credentials.FileAWSCredentials{}, &credentials.IAM{},
	})
	c, err := minio.New(o.Endpoint, &minio.Options{Creds: creds, Secure: !o.Insecure, Region: o.Region, BucketLookup: minio.BucketLookupAuto})
	if err != nil {
		return nil, fmt.Errorf("s3 %s: %w", o.Endpoint, err)
	}
	return &Target{c: c, bucket: o.Bucket, prefix: o.Prefix}, nil
}

func notFound(err error) bool {
	code := minio.ToErrorResponse(err).Code
	return code == "NoSuchKey" || code == "NotFound"
}

// Size reports an object's size.
func (t *Target) Size(ctx context.Context, name string) (int64, bool, error) {
	st, err := t.c.StatObject(ctx, t.bucket, t.prefix+name, minio.StatObjectOptions{})
	if notFound(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return st.Size, true, nil
}

// Put uploads r as name. The payload is not signed chunk by chunk (some
// S3-compatible stores keep aws-chunked bodies verbatim); its MD5 goes
// with it so the store refuses a body damaged on the way.
func (t *Target) Put(ctx context.Context, name string, r io.Reader) error {
	size := int64(-1)
	if s, ok := r.(interface{ Size() int64 }); ok {
		size = s.Size()
	}
	if br, ok := r.(*bytes.Reader); ok {
		size = int64(br.Len())
	}
	_, err := t.c.PutObject(ctx, t.bucket, t.prefix+name, r, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream", DisableContentSha256: true, SendContentMd5: true,
	})
	return err
}

// Create uploads data as name only if there is no such object (a
// conditional PUT, If-None-Match: *, which AWS S3 and MinIO honour).
func (t *Target) Create(ctx context.Context, name string, data []byte) (bool, error) {
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", DisableContentSha256: true, SendContentMd5: true}
	opts.SetMatchETagExcept("*")
	_, err := t.c.PutObject(ctx, t.bucket, t.prefix+name, bytes.NewReader(data), int64(len(data)), opts)
	// 412: the object exists. (409 ConditionalRequestConflict means a
	// concurrent write is in flight: an error, retried at the next run.)
	if minio.ToErrorResponse(err).Code == "PreconditionFailed" {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// Delete removes name; a missing object is not an error.
func (t *Target) Delete(ctx context.Context, name string) error {
	err := t.c.RemoveObject(ctx, t.bucket, t.prefix+name, minio.RemoveObjectOptions{})
	if err != nil && !notFound(err) {
		return err
	}
	return nil
}

// List names the objects directly under the folder prefix ("keys/").
func (t *Target) List(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	for o := range t.c.ListObjects(ctx, t.bucket, minio.ListObjectsOptions{Prefix: t.prefix + prefix}) {
		if o.Err != nil {
			return nil, o.Err
		}
		if strings.HasSuffix(o.Key, "/") {
			continue
		}
		out = append(out, strings.TrimPrefix(o.Key, t.prefix))
	}
	return out, nil
}

// Read returns an object's content.
func (t *Target) Read(ctx context.Context, name string) ([]byte, bool, error) {
	o, err := t.c.GetObject(ctx, t.bucket, t.prefix+name, minio.GetObjectOptions{})
	if err != nil {
		if notFound(err) {
			return nil, false, nil
		}
		return nil, false, err
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if notFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return b, true, nil
}
