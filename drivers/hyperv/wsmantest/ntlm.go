package wsmantest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf16"

	//lint:ignore SA1019 NTLM is built on MD4 (MS-NLMP 3.3.2): compatibility is the point here
	"golang.org/x/crypto/md4"
)

// The server side of NTLMv2 over HTTP (MS-NLMP, MS-NTHT): the client's NEGOTIATE
// gets a CHALLENGE, its AUTHENTICATE is checked against the user's password
// (NTProofStr = HMAC-MD5(NTOWFv2, server challenge || blob)), and the connection is
// authenticated from then on, as WinRM's HTTP.sys does. Session security (signing,
// sealing) is not served: over HTTPS WinRM does not use it.

type connKey struct{}

// connState is one TCP connection's NTLM state.
type connState struct {
	mu        sync.Mutex
	challenge []byte
	user      string // authenticated user, "" until then
}

// connContext attaches a fresh NTLM state to every connection.
func connContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, &connState{})
}

const (
	ntlmSignature = "NTLMSSP\x00"
	// NEGOTIATE_UNICODE | REQUEST_TARGET | NEGOTIATE_NTLM | ALWAYS_SIGN |
	// TARGET_TYPE_DOMAIN | EXTENDED_SESSIONSECURITY | TARGET_INFO | 128 | 56.
	challengeFlags = 0x00000001 | 0x00000004 | 0x00000200 | 0x00008000 | 0x00010000 | 0x00080000 | 0x00800000 | 0x20000000 | 0x80000000
)

func utf16le(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

func fromUTF16le(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// challengeMessage builds a CHALLENGE_MESSAGE for domain and computer.
func challengeMessage(challenge []byte, domain, computer string) []byte {
	target := utf16le(domain)
	var info bytes.Buffer
	av := func(id uint16, v []byte) {
		_ = binary.Write(&info, binary.LittleEndian, id)
		_ = binary.Write(&info, binary.LittleEndian, uint16(len(v)))
		info.Write(v)
	}
	av(2, utf16le(domain))   // MsvAvNbDomainName
	av(1, utf16le(computer)) // MsvAvNbComputerName
	ts := make([]byte, 8)
	binary.LittleEndian.PutUint64(ts, uint64(time.Now().UnixNano()/100+116444736000000000))
	av(7, ts) // MsvAvTimestamp
	av(0, nil)
	const head = 48
	var b bytes.Buffer
	b.WriteString(ntlmSignature)
	_ = binary.Write(&b, binary.LittleEndian, uint32(2))
	_ = binary.Write(&b, binary.LittleEndian, [2]uint16{uint16(len(target)), uint16(len(target))})
	_ = binary.Write(&b, binary.LittleEndian, uint32(head))
	_ = binary.Write(&b, binary.LittleEndian, uint32(challengeFlags))
	b.Write(challenge)
	b.Write(make([]byte, 8))
	_ = binary.Write(&b, binary.LittleEndian, [2]uint16{uint16(info.Len()), uint16(info.Len())})
	_ = binary.Write(&b, binary.LittleEndian, uint32(head+len(target)))
	b.Write(target)
	b.Write(info.Bytes())
	return b.Bytes()
}

// field reads a security buffer (Len, MaxLen, Offset) at off in msg.
func field(msg []byte, off int) ([]byte, error) {
	if len(msg) < off+8 {
		return nil, errors.New("short message")
	}
	l := int(binary.LittleEndian.Uint16(msg[off:]))
	o := int(binary.LittleEndian.Uint32(msg[off+4:]))
	if o < 0 || o+l > len(msg) {
		return nil, errors.New("field out of range")
	}
	return msg[o : o+l], nil
}

// verifyAuthenticate checks an AUTHENTICATE_MESSAGE against challenge and the
// accepted users (DOMAIN\user or user), returning the user.
func verifyAuthenticate(msg, challenge []byte, users map[string]string) (string, error) {
	if len(msg) < 64 || string(msg[:8]) != ntlmSignature || binary.LittleEndian.Uint32(msg[8:]) != 3 {
		return "", errors.New("not an AUTHENTICATE message")
	}
	nt, err := field(msg, 20)
	if err != nil {
		return "", err
	}
	dom, err := field(msg, 28)
	if err != nil {
		return "", err
	}
	usr, err := field(msg, 36)
	if err != nil {
		return "", err
	}
	if len(nt) < 16+28 {
		return "", errors.New("not an NTLMv2 response")
	}
	domain, user := fromUTF16le(dom), fromUTF16le(usr)
	for name, pw := range users {
		d, u, ok := strings.Cut(name, `\`)
		if !ok {
			d, u = "", name
		}
		if !strings.EqualFold(u, user) || (domain != "" && !strings.EqualFold(d, domain)) {
			continue
		}
		h := md4.New()
		h.Write(utf16le(pw))
		v2 := hmacMD5(h.Sum(nil), utf16le(strings.ToUpper(user)+domain))
		if hmac.Equal(hmacMD5(v2, challenge, nt[16:]), nt[:16]) {
			return name, nil
		}
	}
	return "", errors.New("wrong user or password")
}

func hmacMD5(key []byte, data ...[]byte) []byte {
	m := hmac.New(md5.New, key)
	for _, d := range data {
		m.Write(d)
	}
	return m.Sum(nil)
}

// authNTLM handles Negotiate/NTLM authorization; it reports whether the request may
// go on (otherwise it has answered).
func (e *Endpoint) authNTLM(w http.ResponseWriter, r *http.Request) bool {
	cs, _ := r.Context().Value(connKey{}).(*connState)
	if cs == nil {
		return false
	}
	scheme, data, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if !strings.EqualFold(scheme, "Negotiate") && !strings.EqualFold(scheme, "NTLM") {
		if cs.user != "" {
			return true // an authenticated connection
		}
		e.unauthorized(w)
		return false
	}
	msg, err := base64.StdEncoding.DecodeString(strings.TrimSpace(data))
	if err != nil || len(msg) < 12 || string(msg[:8]) != ntlmSignature {
		e.unauthorized(w)
		return false
	}
	switch binary.LittleEndian.Uint32(msg[8:]) {
	case 1:
		cs.challenge = make([]byte, 8)
		_, _ = rand.Read(cs.challenge)
		cs.user = ""
		domain := ""
		for name := range e.Users {
			if d, _, ok := strings.Cut(name, `\`); ok {
				domain = d
			}
		}
		e.count("ntlm-challenge")
		w.Header().Set("WWW-Authenticate", scheme+" "+base64.StdEncoding.EncodeToString(challengeMessage(cs.challenge, domain, e.Node)))
		w.WriteHeader(http.StatusUnauthorized)
		return false
	case 3:
		if cs.challenge == nil {
			// The AUTHENTICATE came on another connection than its NEGOTIATE.
			e.count("ntlm-no-challenge")
			e.unauthorized(w)
			return false
		}
		user, err := verifyAuthenticate(msg, cs.challenge, e.Users)
		cs.challenge = nil
		if err != nil {
			e.unauthorized(w)
			return false
		}
		cs.user = user
		e.count("ntlm-ok")
		return true
	}
	e.unauthorized(w)
	return false
}

func (e *Endpoint) unauthorized(w http.ResponseWriter) {
	e.count("401")
	e.mu.Lock()
	useNTLM, noBasic := e.NTLM, e.NoBasic
	e.mu.Unlock()
	if useNTLM {
		w.Header().Add("WWW-Authenticate", "Negotiate")
	}
	if !noBasic {
		w.Header().Add("WWW-Authenticate", `Basic realm="WSMAN"`)
	}
	w.WriteHeader(http.StatusUnauthorized)
}
