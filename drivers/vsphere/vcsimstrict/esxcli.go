package vcsimstrict

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	esxcli "github.com/vmware/govmomi/cli/esx"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
	vimxml "github.com/vmware/govmomi/vim25/xml"
)

// The esxcli model: `software profile update -d DEPOT -p PROFILE [--dry-run]`. The
// answer's fields (Message, RebootRequired, VIBsInstalled, VIBsRemoved, VIBsSkipped)
// follow esxcli's documented InstallationResult; the exact wire form of a real host is
// not known here and awaits one.

// pendingVIBs are what the profile brings over Options.Build.
func (s *Sim) pendingVIBs() []string {
	v := "8.0.3-0.55." + s.opts.TargetBuild
	return []string{"VMware_bootbank_esx-base_" + v, "VMware_bootbank_esx-update_" + v, "VMware_bootbank_vsan_" + v}
}

var profileInfo = esxcli.CommandInfo{
	CommandInfoItem: esxcli.CommandInfoItem{Name: "software.profile", DisplayName: "profile", Help: "Display, install, update, or validate image profiles"},
	Method: []esxcli.CommandInfoMethod{{
		CommandInfoItem: esxcli.CommandInfoItem{Name: "update", DisplayName: "update", Help: "Updates the host with VIBs from an image profile in a depot."},
		Param: []esxcli.CommandInfoParam{
			{CommandInfoItem: esxcli.CommandInfoItem{Name: "depot", DisplayName: "depot"}, Aliases: []string{"-d", "--depot"}},
			{CommandInfoItem: esxcli.CommandInfoItem{Name: "profile", DisplayName: "profile"}, Aliases: []string{"-p", "--profile"}},
			{CommandInfoItem: esxcli.CommandInfoItem{Name: "dryrun", DisplayName: "dry-run"}, Aliases: []string{"--dry-run"}, Flag: true},
			{CommandInfoItem: esxcli.CommandInfoItem{Name: "nosigcheck", DisplayName: "no-sig-check"}, Aliases: []string{"--no-sig-check"}, Flag: true},
			{CommandInfoItem: esxcli.CommandInfoItem{Name: "allowdowngrades", DisplayName: "allow-downgrades"}, Aliases: []string{"--allow-downgrades"}, Flag: true},
		},
		Hints: esxcli.CommandInfoHints{{Key: "formatter", Value: "simple"}},
	}},
}

// esxcli answers the profile namespace; other esxcli calls go to vcsim.
func (s *Sim) esxcli(w http.ResponseWriter, method *simulator.Method) bool {
	moid, name, args := executeSoapFields(method.Body)
	switch {
	case name == "vim.CLIInfo.FetchCLIInfo" && first(args["typeName"]) == "vim.EsxCLI.software.profile":
		var b bytes.Buffer
		if err := vimxml.NewEncoder(&b).Encode(&profileInfo); err != nil {
			return false
		}
		writeExecuteSoap(w, b.String(), "")
		return true
	case name == "vim.EsxCLI.software.profile.update" && moid == "ha-cli-handler-software-profile":
		res, fault := s.profileUpdate(method.This.Value, first(args["depot"]), first(args["profile"]), first(args["dryrun"]) == "true")
		if fault != "" {
			writeExecuteSoap(w, "", fault)
			return true
		}
		var b bytes.Buffer
		if err := vimxml.NewEncoder(&b).Encode(res); err != nil {
			return false
		}
		writeExecuteSoap(w, b.String(), "")
		return true
	}
	return false
}

func (s *Sim) profileUpdate(hostMoid, depot, profile string, dryRun bool) (*esxcli.Response, string) {
	ctx := s.ctx()
	hf, ok := s.readHost(ctx, typesHost(hostMoid))
	if !ok {
		return nil, "[NotFound] no such host"
	}
	switch {
	case depot == "" || profile == "":
		return nil, "[InvalidArgument] --depot and --profile are required"
	case depot != s.opts.Depot:
		return nil, fmt.Sprintf("[MetadataDownloadError] Could not download from depot at %s", depot)
	case profile != s.opts.Profile:
		return nil, fmt.Sprintf("[NoMatchError] No image profile found with name '%s'", profile)
	case !hf.connected:
		return nil, "[HostNotConnected] the host is not responding"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	hs := s.hosts[hostMoid]
	res := esxcli.Response{Kind: "InstallationResult"}
	v := esxcli.Values{"RebootRequired": {"false"}, "VIBsRemoved": nil, "VIBsSkipped": nil}
	pending := hs.build != s.opts.TargetBuild && !hs.staged
	switch {
	case !pending:
		v["Message"] = []string{"Host is not changed."}
		if hs.staged {
			v["RebootRequired"] = []string{"true"}
			v["Message"] = []string{"The update completed successfully, but the system needs to be rebooted for the changes to be effective."}
		}
	case dryRun:
		v["Message"] = []string{"Dryrun only, host not changed. The following installers will be applied: [BootBankInstaller]"}
		v["RebootRequired"] = []string{"true"}
		v["VIBsInstalled"] = s.pendingVIBs()
	case !hf.maintenance:
		s.stats.Refused = append(s.stats.Refused, Refusal{Method: "esxcli software profile update", Object: hf.name, Fault: "MaintenanceMode", Reason: "host not in maintenance mode"})
		return nil, "[MaintenanceMode] MaintenanceMode is required to install the VIBs: the host must be in maintenance mode"
	default:
		hs.staged = true
		s.stats.Installs[hf.name]++
		v["Message"] = []string{"The update completed successfully, but the system needs to be rebooted for the changes to be effective."}
		v["RebootRequired"] = []string{"true"}
		v["VIBsInstalled"] = s.pendingVIBs()
	}
	res.Values = []esxcli.Values{v}
	return &res, ""
}

// writeExecuteSoap answers ExecuteSoap with a response document or an esxcli fault.
func writeExecuteSoap(w http.ResponseWriter, response, fault string) {
	var inner bytes.Buffer
	if fault != "" {
		inner.WriteString("<fault><faultMsg>")
		_ = xml.EscapeText(&inner, []byte(fault))
		inner.WriteString("</faultMsg></fault>")
	} else {
		inner.WriteString("<response>")
		_ = xml.EscapeText(&inner, []byte(response))
		inner.WriteString("</response>")
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+
		`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">`+
		`<soapenv:Body><ExecuteSoapResponse xmlns="urn:vim25"><returnval>%s</returnval></ExecuteSoapResponse></soapenv:Body></soapenv:Envelope>`, inner.String())
}

// executeSoapFields reads govmomi's internal ExecuteSoapRequest (not importable) by
// its field names; each argument's value is XML (<name>v</name>...).
func executeSoapFields(body any) (moid, method string, args map[string][]string) {
	args = map[string][]string{}
	v := reflect.ValueOf(body)
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return "", "", args
	}
	if f := v.FieldByName("Moid"); f.IsValid() {
		moid = f.String()
	}
	if f := v.FieldByName("Method"); f.IsValid() {
		method = f.String()
	}
	if f := v.FieldByName("Argument"); f.IsValid() && f.Kind() == reflect.Slice {
		for i := range f.Len() {
			a := f.Index(i)
			name, val := a.FieldByName("Name"), a.FieldByName("Val")
			if name.IsValid() && val.IsValid() {
				args[name.String()] = argValues(val.String())
			}
		}
	}
	return moid, method, args
}

func argValues(x string) []string {
	d := xml.NewDecoder(strings.NewReader(x))
	var out []string
	for {
		t, err := d.Token()
		if err == io.EOF || err != nil {
			return out
		}
		if c, ok := t.(xml.CharData); ok {
			out = append(out, string(c))
		}
	}
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func typesHost(moid string) types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "HostSystem", Value: moid}
}
