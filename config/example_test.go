package config_test

import (
	"errors"
	"fmt"

	"github.com/gatehouse-dev/gatehouse/config"
)

func ExampleParse() {
	_, err := config.Parse("gatehouse.yaml", []byte(`routes:
  - name: status
    host: Status.example.com
    upstream: htp://x
    public: true
`))
	fmt.Println(err)
	var fe *config.FieldError
	if errors.As(err, &fe) {
		fmt.Println(fe.Field, fe.Line)
	}
	// Output:
	// gatehouse.yaml:3: routes[0].host: "Status.example.com": must be lowercase
	// gatehouse.yaml:4: routes[0].upstream: "htp://x": unsupported scheme
	// routes[0].host 3
}

func ExampleParseDuration() {
	d, _ := config.ParseDuration("1d12h")
	fmt.Println(d.D(), d)
	// Output: 36h0m0s 1d12h
}
