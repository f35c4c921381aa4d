package wsmantest

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// WS-Man actions of the Windows Remote Shell (MS-WSMV 3.1.4).
const (
	actCreate  = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
	actDelete  = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
	shellNS    = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
	actCommand = shellNS + "/Command"
	actReceive = shellNS + "/Receive"
	actSignal  = shellNS + "/Signal"
	actSend    = shellNS + "/Send"
	stateDone  = shellNS + "/CommandState/Done"
	stateRun   = shellNS + "/CommandState/Running"
	resCmd     = shellNS + "/cmd"
	// DefaultMaxEnvelope is WinRM's MaxEnvelopeSizekb default (150 KiB).
	DefaultMaxEnvelope = 153600
)

// Endpoint is one node's WinRM HTTPS listener. A reboot stops it (every open shell is
// lost, connections drop) and starts it again on the same address.
type Endpoint struct {
	Node  string
	Model *Model
	// TLS is the listener's configuration (a test CA's server certificate).
	TLS *tls.Config
	// Users maps accepted user names (DOMAIN\user) to passwords.
	Users map[string]string
	// NTLM offers Negotiate (NTLMv2) authentication; NoBasic refuses Basic.
	NTLM, NoBasic bool
	// MaxEnvelope is the largest request accepted (default DefaultMaxEnvelope).
	MaxEnvelope int
	// Listen opens the listener (default net.Listen on loopback; Netns.Listen in a
	// node's namespace).
	Listen func(addr string) (net.Listener, error)

	mu     sync.Mutex
	addr   string
	srv    *http.Server
	shells map[string]*shell
	counts map[string]int
}

type shell struct {
	id   string
	cmds map[string]*command
}

type command struct {
	cancel context.CancelFunc
	done   chan struct{}
	stdout string
	stderr string
	exit   int
	sent   bool
}

// Start listens on the endpoint's address (127.0.0.1:0 the first time, then the same
// one again) and serves.
func (e *Endpoint) Start(listenAddr string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv != nil {
		return nil
	}
	if e.addr != "" {
		listenAddr = e.addr
	}
	if listenAddr == "" {
		listenAddr = "127.0.0.1:0"
	}
	listen := e.Listen
	if listen == nil {
		listen = func(a string) (net.Listener, error) { return net.Listen("tcp", a) }
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the old socket may linger for a moment after a reboot
		if ln, err = listen(listenAddr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	e.addr = ln.Addr().String()
	e.shells = map[string]*shell{}
	if e.counts == nil {
		e.counts = map[string]int{}
	}
	e.srv = &http.Server{Handler: http.HandlerFunc(e.serve), ReadHeaderTimeout: 10 * time.Second, ConnContext: connContext, ErrorLog: log.New(io.Discard, "", 0)}
	srv := e.srv
	if e.TLS != nil {
		ln = tls.NewListener(ln, e.TLS)
	}
	go func() { _ = srv.Serve(ln) }()
	return nil
}

// mutualProfile is the Authorization header of WS-Man's HTTPS mutual (client
// certificate) security profile.
const mutualProfile = "http://schemas.dmtf.org/wbem/wsman/1/wsman/secprofile/https/mutual"

// knownUser reports whether cn names one of the users (DOMAIN\user or user).
func (e *Endpoint) knownUser(cn string) bool {
	for name := range e.Users {
		_, u, ok := strings.Cut(name, `\`)
		if !ok {
			u = name
		}
		if strings.EqualFold(u, cn) || strings.EqualFold(name, cn) {
			return true
		}
	}
	return false
}

// SetAuth offers NTLM (Negotiate) and refuses or accepts Basic.
func (e *Endpoint) SetAuth(ntlm, noBasic bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.NTLM, e.NoBasic = ntlm, noBasic
}

// Addr is where the endpoint listens.
func (e *Endpoint) Addr() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addr
}

// Stop closes the listener and every connection and forgets every shell, as a host
// that goes down does.
func (e *Endpoint) Stop() {
	e.mu.Lock()
	srv, shells := e.srv, e.shells
	e.srv, e.shells = nil, map[string]*shell{}
	e.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
	for _, s := range shells {
		for _, c := range s.cmds {
			c.cancel()
		}
	}
}

// Count returns how often the endpoint answered kind: an action's last path element
// ("Receive") or a fault subcode ("w:TimedOut").
func (e *Endpoint) Count(kind string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.counts[kind]
}

func (e *Endpoint) count(kind string) {
	e.mu.Lock()
	e.counts[kind]++
	e.mu.Unlock()
}

// request is the part of a WS-Man envelope the server reads; encoding/xml matches
// the local names whatever the prefixes.
type request struct {
	Header struct {
		Action           string `xml:"Action"`
		MessageID        string `xml:"MessageID"`
		ResourceURI      string `xml:"ResourceURI"`
		OperationTimeout string `xml:"OperationTimeout"`
		Selectors        []struct {
			Name  string `xml:"Name,attr"`
			Value string `xml:",chardata"`
		} `xml:"SelectorSet>Selector"`
	} `xml:"Header"`
	Body struct {
		CommandLine *struct {
			Command   string   `xml:"Command"`
			Arguments []string `xml:"Arguments"`
		} `xml:"CommandLine"`
		Receive *struct {
			Stream struct {
				CommandID string `xml:"CommandId,attr"`
			} `xml:"DesiredStream"`
		} `xml:"Receive"`
		Signal *struct {
			CommandID string `xml:"CommandId,attr"`
			Code      string `xml:"Code"`
		} `xml:"Signal"`
	} `xml:"Body"`
}

func (r *request) shellID() string {
	for _, s := range r.Header.Selectors {
		if s.Name == "ShellId" {
			return strings.TrimSpace(s.Value)
		}
	}
	return ""
}

func (e *Endpoint) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/wsman" {
		http.NotFound(w, r)
		return
	}
	e.mu.Lock()
	useNTLM, noBasic := e.NTLM, e.NoBasic
	e.mu.Unlock()
	if r.Header.Get("Authorization") == mutualProfile {
		// Certificate authentication: the TLS handshake verified the chain; the
		// certificate's subject must be one of the users.
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || !e.knownUser(r.TLS.VerifiedChains[0][0].Subject.CommonName) {
			e.unauthorized(w)
			return
		}
		e.count("cert-ok")
	} else if user, pass, ok := r.BasicAuth(); ok && !noBasic {
		want, known := e.Users[user]
		if !known || subtle.ConstantTimeCompare([]byte(pass), []byte(want)) != 1 {
			e.unauthorized(w)
			return
		}
	} else if !useNTLM || !e.authNTLM(w, r) {
		if !useNTLM {
			e.unauthorized(w)
		}
		return
	}
	limit := e.MaxEnvelope
	if limit == 0 {
		limit = DefaultMaxEnvelope
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		return
	}
	var req request
	if len(body) > limit {
		e.fault(w, &req, "w:EncodingLimit", "2150858817", fmt.Sprintf("The WS-Management service cannot process the request because the request envelope size exceeds the maximum envelope size of %d bytes.", limit))
		return
	}
	if err := xml.Unmarshal(body, &req); err != nil {
		e.fault(w, &req, "w:SchemaValidationError", "2150858817", "The SOAP XML in the message does not match the corresponding XML schema definition: "+err.Error())
		return
	}
	switch req.Header.Action {
	case actCreate:
		e.create(w, &req, r.Host)
	case actCommand:
		e.command(w, &req)
	case actReceive:
		e.receive(w, r.Context(), &req)
	case actSignal:
		e.signal(w, &req)
	case actSend:
		if _, ok := e.lookup(w, &req); ok {
			e.reply(w, &req, shellNS+"/SendResponse", `<rsp:SendResponse/>`)
		}
	case actDelete:
		e.delete(w, &req)
	default:
		e.fault(w, &req, "a:ActionNotSupported", "2150858770", "The action is not supported by the service: "+req.Header.Action)
	}
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]))
}

func (e *Endpoint) create(w http.ResponseWriter, req *request, host string) {
	id := newID()
	e.mu.Lock()
	e.shells[id] = &shell{id: id, cmds: map[string]*command{}}
	e.mu.Unlock()
	e.count("Create")
	// masterzen/winrm reads the ShellId selector of ResourceCreated; pywinrm any
	// element with Name="ShellId"; others rsp:Shell/rsp:ShellId.
	e.reply(w, req, "http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse", fmt.Sprintf(
		`<x:ResourceCreated><a:Address>https://%s/wsman</a:Address><a:ReferenceParameters><w:ResourceURI>%s</w:ResourceURI><w:SelectorSet><w:Selector Name="ShellId">%s</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>`+
			`<rsp:Shell><rsp:ShellId>%s</rsp:ShellId><rsp:ResourceUri>%s</rsp:ResourceUri><rsp:Owner>drover</rsp:Owner><rsp:ClientIP>127.0.0.1</rsp:ClientIP><rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut><rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams><rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime><rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity></rsp:Shell>`,
		xmlEsc(host), resCmd, id, id, resCmd))
}

// lookup finds the request's shell or answers the fault Windows gives for an unknown one.
func (e *Endpoint) lookup(w http.ResponseWriter, req *request) (*shell, bool) {
	id := req.shellID()
	e.mu.Lock()
	s, ok := e.shells[id]
	e.mu.Unlock()
	if !ok {
		e.fault(w, req, "w:InvalidSelectors", "2150858843", fmt.Sprintf("The request for the Windows Remote Shell with ShellId %s failed because the shell was not found on the server. Possible causes are: the specified ShellId is incorrect or the shell no longer exists on the server. Provide the correct ShellId or create a new shell and retry the operation.", id))
	}
	return s, ok
}

func (e *Endpoint) command(w http.ResponseWriter, req *request) {
	s, ok := e.lookup(w, req)
	if !ok {
		return
	}
	if req.Body.CommandLine == nil {
		e.fault(w, req, "w:SchemaValidationError", "2150858817", "Command without CommandLine")
		return
	}
	line := strings.TrimSpace(req.Body.CommandLine.Command)
	if len(req.Body.CommandLine.Arguments) > 0 {
		line += " " + strings.Join(req.Body.CommandLine.Arguments, " ")
	}
	if len(line) > 8191 {
		e.fault(w, req, "w:InternalError", "2147942606", "The filename or extension is too long. ")
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &command{cancel: cancel, done: make(chan struct{})}
	id := newID()
	e.mu.Lock()
	s.cmds[id] = c
	e.mu.Unlock()
	e.count("Command")
	go func() {
		defer close(c.done)
		c.stdout, c.stderr, c.exit = e.Model.Exec(ctx, e.Node, line)
		if ctx.Err() != nil {
			c.exit = -1073741510 // STATUS_CONTROL_C_EXIT: terminated by a signal
		}
	}()
	e.reply(w, req, shellNS+"/CommandResponse", `<rsp:CommandResponse><rsp:CommandId>`+id+`</rsp:CommandId></rsp:CommandResponse>`)
}

var isoDur = regexp.MustCompile(`^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$`)

// operationTimeout reads the OperationTimeout header (PT60S, PT60.000S); 60s without one.
func operationTimeout(s string) time.Duration {
	m := isoDur.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 60 * time.Second
	}
	h, _ := strconv.Atoi(m[1])
	mi, _ := strconv.Atoi(m[2])
	sec, _ := strconv.ParseFloat(m[3], 64)
	d := time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute + time.Duration(sec*float64(time.Second))
	if d <= 0 {
		return 60 * time.Second
	}
	return d
}

// receive is a long poll: it answers when the command has finished, or with the fault
// w:TimedOut once OperationTimeout has passed without output.
func (e *Endpoint) receive(w http.ResponseWriter, rctx context.Context, req *request) {
	s, ok := e.lookup(w, req)
	if !ok || req.Body.Receive == nil {
		if ok {
			e.fault(w, req, "w:SchemaValidationError", "2150858817", "Receive without DesiredStream")
		}
		return
	}
	id := req.Body.Receive.Stream.CommandID
	e.mu.Lock()
	c, ok := s.cmds[id]
	e.mu.Unlock()
	if !ok {
		e.fault(w, req, "w:InvalidParameter", "2150858882", "The parameter is incorrect: CommandId "+id)
		return
	}
	e.count("Receive")
	timer := time.NewTimer(operationTimeout(req.Header.OperationTimeout))
	defer timer.Stop()
	select {
	case <-c.done:
	case <-timer.C:
		e.fault(w, req, "w:TimedOut", "2150858793", "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  ")
		return
	case <-rctx.Done():
		return
	}
	var b strings.Builder
	b.WriteString(`<rsp:ReceiveResponse>`)
	e.mu.Lock()
	first := !c.sent
	c.sent = true
	e.mu.Unlock()
	if first {
		for _, st := range []struct{ name, data string }{{"stdout", c.stdout}, {"stderr", c.stderr}} {
			if st.data != "" {
				fmt.Fprintf(&b, `<rsp:Stream Name="%s" CommandId="%s">%s</rsp:Stream>`, st.name, id, base64.StdEncoding.EncodeToString([]byte(st.data)))
			}
		}
	}
	fmt.Fprintf(&b, `<rsp:Stream Name="stdout" CommandId="%s" End="true"></rsp:Stream><rsp:Stream Name="stderr" CommandId="%s" End="true"></rsp:Stream>`, id, id)
	fmt.Fprintf(&b, `<rsp:CommandState CommandId="%s" State="%s"><rsp:ExitCode>%d</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse>`, id, stateDone, c.exit)
	e.reply(w, req, shellNS+"/ReceiveResponse", b.String())
}

func (e *Endpoint) signal(w http.ResponseWriter, req *request) {
	s, ok := e.lookup(w, req)
	if !ok {
		return
	}
	e.count("Signal")
	if req.Body.Signal != nil {
		e.mu.Lock()
		c := s.cmds[req.Body.Signal.CommandID]
		e.mu.Unlock()
		if c != nil && strings.HasSuffix(req.Body.Signal.Code, "/signal/terminate") || c != nil && strings.HasSuffix(req.Body.Signal.Code, "/signal/ctrl_c") {
			c.cancel()
		}
	}
	e.reply(w, req, shellNS+"/SignalResponse", `<rsp:SignalResponse/>`)
}

func (e *Endpoint) delete(w http.ResponseWriter, req *request) {
	s, ok := e.lookup(w, req)
	if !ok {
		return
	}
	e.mu.Lock()
	delete(e.shells, s.id)
	e.mu.Unlock()
	for _, c := range s.cmds {
		c.cancel()
	}
	e.count("Delete")
	e.reply(w, req, "http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse", "")
}

const envelopeHead = `<s:Envelope xml:lang="en-US" xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell" xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">`

func (e *Endpoint) reply(w http.ResponseWriter, req *request, action, body string) {
	e.write(w, http.StatusOK, req, action, body)
}

func (e *Endpoint) write(w http.ResponseWriter, status int, req *request, action, body string) {
	w.Header().Set("Content-Type", "application/soap+xml;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `%s<s:Header><a:Action>%s</a:Action><a:MessageID>uuid:%s</a:MessageID><a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To><a:RelatesTo>%s</a:RelatesTo></s:Header><s:Body>%s</s:Body></s:Envelope>`,
		envelopeHead, action, newID(), xmlEsc(req.Header.MessageID), body)
}

// fault answers a SOAP fault with HTTP 500, as WinRM does.
func (e *Endpoint) fault(w http.ResponseWriter, req *request, subcode, code, msg string) {
	e.count(subcode)
	e.write(w, http.StatusInternalServerError, req, "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", fmt.Sprintf(
		`<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>%s</s:Value></s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">%s</s:Text></s:Reason><s:Detail><f:WSManFault xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault" Code="%s" Machine="%s"><f:Message>%s</f:Message></f:WSManFault></s:Detail></s:Fault>`,
		subcode, xmlEsc(msg), code, xmlEsc(e.Node), xmlEsc(msg)))
}

func xmlEsc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
