package config

// The YAML schema of gatehouse.yaml (DESIGN.md, "Configuration"). Keys are a
// contract: they only ever grow. These types are plain data; Load fills them
// and Validate checks them without side effects.

// Config is the whole gatehouse.yaml.
type Config struct {
	Listen         string   `yaml:"listen"`
	HTTPListen     string   `yaml:"http_listen"`
	AdminListen    string   `yaml:"admin_listen"`
	AdminToken     Secret   `yaml:"admin_token"`
	AdminTokenFile string   `yaml:"admin_token_file"`
	TrustedProxies []string `yaml:"trusted_proxies"`
	ExternalURL    string   `yaml:"external_url"`
	TLS            TLS      `yaml:"tls"`
	OIDC           OIDC     `yaml:"oidc"`
	MFA            MFA      `yaml:"mfa"`
	Session        Session  `yaml:"session"`
	Redis          Redis    `yaml:"redis"`
	Policy         Policy   `yaml:"policy"`
	Audit          Audit    `yaml:"audit"`
	Anomaly        Anomaly  `yaml:"anomaly"`
	Identity       Identity `yaml:"identity"`
	Log            Log      `yaml:"log"`
	Timeouts       Timeouts `yaml:"timeouts"`
	Routes         []Route  `yaml:"routes"`

	// Path is the file the config was loaded from (not a YAML key).
	Path string `yaml:"-"`

	// lines maps each field path written in the file ("routes[2].upstream")
	// to its 1-based line, for errors that name file:line. Read-only after
	// Load; see Line.
	lines map[string]int
}

// TLS selects how certificates are obtained.
type TLS struct {
	Mode     string `yaml:"mode"` // acme | files | local
	ACME     ACME   `yaml:"acme"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// LocalDir holds the local CA (mode: local).
	LocalDir string `yaml:"local_dir"`
}

// ACME configures certmagic's ACME issuer.
type ACME struct {
	Email     string `yaml:"email"`
	Directory string `yaml:"directory"`
	CARoot    string `yaml:"ca_root"`
	Storage   string `yaml:"storage"`
}

// OIDC is the identity provider.
type OIDC struct {
	Issuer           string            `yaml:"issuer"`
	ClientID         string            `yaml:"client_id"`
	ClientSecret     Secret            `yaml:"client_secret"`
	ClientSecretFile string            `yaml:"client_secret_file"`
	Scopes           []string          `yaml:"scopes"`
	Claims           map[string]string `yaml:"claims"`  // groups, roles, email, name: claim names (dotted paths)
	CARoot           string            `yaml:"ca_root"` // extra CA for talking to the IdP
	AllowedAlgs      []string          `yaml:"allowed_algs"`
}

// MFA says what counts as multi-factor authentication.
type MFA struct {
	AMRAny    []string `yaml:"amr_any"`
	ACRAny    []string `yaml:"acr_any"`
	StepUpACR string   `yaml:"step_up_acr"`
	MaxAge    Duration `yaml:"max_age"`
}

// Session configures session cookies and storage.
type Session struct {
	Cookie      string   `yaml:"cookie"`
	SecretFiles []string `yaml:"secret_files"`
	Lifetime    Duration `yaml:"lifetime"`
	IdleTimeout Duration `yaml:"idle_timeout"`
	Store       string   `yaml:"store"` // cookie | redis
}

// Redis is the shared state store.
type Redis struct {
	Addr          string   `yaml:"addr"`
	Password      Secret   `yaml:"password"`
	PasswordFile  string   `yaml:"password_file"`
	DB            int      `yaml:"db"`
	TLS           bool     `yaml:"tls"`
	Timeout       Duration `yaml:"timeout"`
	SentinelAddrs []string `yaml:"sentinel_addrs"`
	MasterName    string   `yaml:"master_name"`
	ClusterAddrs  []string `yaml:"cluster_addrs"`
}

// Policy configures the OPA engine.
type Policy struct {
	Dir       string   `yaml:"dir"`
	Timeout   Duration `yaml:"timeout"`
	ShadowDir string   `yaml:"shadow_dir"`
	// DecisionCache memoises decisions per policy revision, keyed by the
	// input fields the policy reads (nil: on). See docs/policy.md.
	DecisionCache *bool `yaml:"decision_cache"`
}

// Audit configures the signed audit log.
type Audit struct {
	Dir                string        `yaml:"dir"`
	SigningKeyFile     string        `yaml:"signing_key_file"`
	CheckpointInterval Duration      `yaml:"checkpoint_interval"`
	Durability         string        `yaml:"durability"` // batch | always
	GroupCommit        Duration      `yaml:"group_commit"`
	SegmentSize        Size          `yaml:"segment_size"`
	Publish            AuditPublish  `yaml:"publish"`
	EncryptionKeyFile  string        `yaml:"encryption_key_file"`
	Retention          Duration      `yaml:"retention"`
	Backup             AuditBackup   `yaml:"backup"`
	Reports            []AuditReport `yaml:"reports"`
}

// AuditPublish sends every checkpoint off the machine.
type AuditPublish struct {
	Webhook string `yaml:"webhook"`
	File    string `yaml:"file"`
}

// AuditBackup copies the audit log directory to a bucket.
type AuditBackup struct {
	URL      string   `yaml:"url"`      // file:///absolute/dir (outside audit.dir) or s3://bucket/prefix?endpoint=&region=
	Interval Duration `yaml:"interval"` // how often (default 5m), and once more at shutdown
}

// AuditReport is a scheduled compliance report.
type AuditReport struct {
	Every   Duration          `yaml:"every"`
	Format  string            `yaml:"format"`
	Deliver AuditReportTarget `yaml:"deliver"`
}

// AuditReportTarget is where a scheduled report goes.
type AuditReportTarget struct {
	Dir string `yaml:"dir"`
}

// Anomaly configures detectors and responses.
type Anomaly struct {
	Timezone     string `yaml:"timezone"`
	OnStoreError string `yaml:"on_store_error"` // fail_closed | fail_open
	Night        string `yaml:"night"`          // "22:00-06:00"
	Store        string `yaml:"store"`          // memory | redis
	// StateFile keeps the memory store's counters, baselines and step-up
	// requests across restarts (saved every minute and at shutdown).
	StateFile string        `yaml:"state_file"`
	BlockFor  Duration      `yaml:"block_for"`
	Rules     []AnomalyRule `yaml:"rules"`
	Alerts    []AlertSink   `yaml:"alerts"`
}

// AnomalyRule is one detector and what to do when it fires.
type AnomalyRule struct {
	Name              string   `yaml:"name"`
	When              string   `yaml:"when"` // "" | night
	Window            Duration `yaml:"window"`
	DownloadsOver     int64    `yaml:"downloads_over"`
	BytesOver         Size     `yaml:"bytes_over"`
	RequestsOver      int64    `yaml:"requests_over"`
	DistinctPathsOver int64    `yaml:"distinct_paths_over"`
	AboveBaseline     float64  `yaml:"above_baseline"`
	MinHistory        Duration `yaml:"min_history"`
	Per               string   `yaml:"per"` // user | session
	Action            []string `yaml:"action"`
	BlockFor          Duration `yaml:"block_for"`
}

// AlertSink is where alerts go.
type AlertSink struct {
	Webhook *WebhookSink `yaml:"webhook"`
}

// WebhookSink posts a JSON body signed with HMAC-SHA256.
type WebhookSink struct {
	URL        string `yaml:"url"`
	Secret     Secret `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
}

// Identity configures what is sent upstream about the user.
type Identity struct {
	Headers   IdentityHeaders `yaml:"headers"`
	Assertion Assertion       `yaml:"assertion"`
}

// IdentityHeaders names the headers carrying identity upstream.
type IdentityHeaders struct {
	User   string `yaml:"user"`
	Email  string `yaml:"email"`
	Groups string `yaml:"groups"`
	Roles  string `yaml:"roles"`
}

// Assertion is the signed JWT sent upstream.
type Assertion struct {
	Header  string   `yaml:"header"`
	KeyFile string   `yaml:"key_file"`
	TTL     Duration `yaml:"ttl"`
}

// Log configures zap.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"` // json | console
	Access bool   `yaml:"access"`
}

// Timeouts bound each side of the proxy.
type Timeouts struct {
	ReadHeader     Duration `yaml:"read_header"`
	Idle           Duration `yaml:"idle"`
	UpstreamDial   Duration `yaml:"upstream_dial"`
	UpstreamHeader Duration `yaml:"upstream_response_header"`
	Shutdown       Duration `yaml:"shutdown"`
}

// Route is one protected application.
type Route struct {
	Name       string    `yaml:"name"`
	Host       string    `yaml:"host"`
	PathPrefix string    `yaml:"path_prefix"`
	Upstream   string    `yaml:"upstream"`
	MFA        string    `yaml:"mfa"` // required | optional
	Public     bool      `yaml:"public"`
	WebSockets bool      `yaml:"websockets"`
	Downloads  Downloads `yaml:"downloads"`
	// PreserveHost sends the client's Host upstream instead of the upstream's.
	PreserveHost bool `yaml:"preserve_host"`
	// PathCharset narrows the characters a path may hold: "" (any valid
	// UTF-8), "nfkc" (no compatibility look-alikes such as full-width
	// letters), "ascii".
	PathCharset string `yaml:"path_charset"`
}

// Downloads says which responses count as downloads.
type Downloads struct {
	Paths        []string `yaml:"paths"`
	ContentTypes []string `yaml:"content_types"`
}
