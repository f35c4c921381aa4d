package wsmantest

import (
	"bytes"
	"testing"
)

// FuzzVerifyAuthenticate: any AUTHENTICATE message a client sends is refused or
// verified without a panic, and a message that does not carry the right NTProofStr
// is never accepted.
func FuzzVerifyAuthenticate(f *testing.F) {
	challenge := []byte("12345678")
	f.Add([]byte("NTLMSSP\x00\x03\x00\x00\x00" + string(bytes.Repeat([]byte{0xff}, 60))))
	f.Add(challengeMessage(challenge, "HV", "HV1"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		user, err := verifyAuthenticate(msg, challenge, map[string]string{`HV\drover`: "pw"})
		if err == nil && user != `HV\drover` {
			t.Fatalf("accepted %q as %q", msg, user)
		}
	})
}
