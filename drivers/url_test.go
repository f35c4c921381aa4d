package drivers

import (
	"net/url"
	"strings"
	"testing"
)

func TestParseURL_ErrorsNeverRepeatTheURL(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"https://admin:s3cret/sdk", "not a port number"},
		{"https://u:p@vc/%zz", "literal % as %25"},
		{"%/@", "literal % as %25"},
		{"https://pa ss@h st/", "a character not allowed in a host name"},
		{"https://vc.example\n/sdk", "control character"},
		{":secret@vc", "no scheme"},
	}
	for _, tt := range tests {
		_, err := ParseURL(tt.in)
		if err == nil {
			t.Fatalf("ParseURL(%q) accepted", tt.in)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseURL(%q) = %v, want it to say %q", tt.in, err, tt.want)
		}
	}
	if u, err := ParseURL("https://vc.example.com:443/sdk"); err != nil || u.Port() != "443" {
		t.Fatalf("a good URL: %v %v", u, err)
	}
}

var ownProblems = map[string]bool{}

func init() {
	for _, s := range []string{"%zz", "https://h st/", "https://h:x/", "a\x00", ":x", "http://[::1"} {
		_, err := url.Parse(s)
		ownProblems[urlProblem(err).Error()] = true
	}
}

// FuzzParseURL holds that an error is one of ParseURL's own sentences, never
// url.Parse's, which quote parts of the input.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"https://vc/sdk", "https://admin:s3cret/sdk", "%/@", "http://[::1", "a b://c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, err := ParseURL(s)
		if err == nil {
			return
		}
		if !ownProblems[err.Error()] {
			t.Fatalf("ParseURL(%q) = %q: not one of its own sentences", s, err)
		}
	})
}
