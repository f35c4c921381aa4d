package libvirt

import (
	"encoding/xml"
	"fmt"
	"path/filepath"
	"strings"
)

// MetadataNS is the XML namespace of Drover's per-domain metadata element.
const MetadataNS = "https://droverhq.github.io/xmlns/libvirt/1"

// domainInfo is what the driver reads from a domain's XML.
type domainInfo struct {
	// NotMigratable is the reason the domain cannot live-migrate, "" when it can.
	NotMigratable    string
	AntiAffinity     string
	AntiAffinityHard bool
	PreferredNode    string
}

// domainXML is the subset of libvirt's domain XML the driver needs.
type domainXML struct {
	XMLName  xml.Name `xml:"domain"`
	Metadata struct {
		Inner []metaElem `xml:",any"`
	} `xml:"metadata"`
	Devices struct {
		Disks []struct {
			Type      string    `xml:"type,attr"`
			Device    string    `xml:"device,attr"`
			Shareable *struct{} `xml:"shareable"`
			ReadOnly  *struct{} `xml:"readonly"`
			Source    struct {
				File string `xml:"file,attr"`
				Dev  string `xml:"dev,attr"`
				Pool string `xml:"pool,attr"`
				Vol  string `xml:"volume,attr"`
			} `xml:"source"`
			Target struct {
				Dev string `xml:"dev,attr"`
			} `xml:"target"`
		} `xml:"disk"`
		Hostdevs    []struct{} `xml:"hostdev"`
		Filesystems []struct {
			Driver struct {
				Type string `xml:"type,attr"`
			} `xml:"driver"`
			Target struct {
				Dir string `xml:"dir,attr"`
			} `xml:"target"`
		} `xml:"filesystem"`
	} `xml:"devices"`
}

type metaElem struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
}

// parseDomainXML reads migratability and Drover's metadata from a domain's XML. Disks
// on local storage do not make a domain non-migratable: they move with it (storage
// migration, see storage.go), and policy.local_storage decides whether they may.
func parseDomainXML(data string) (domainInfo, error) {
	var d domainXML
	if err := xml.Unmarshal([]byte(data), &d); err != nil {
		return domainInfo{}, fmt.Errorf("parse domain xml: %w", err)
	}
	var info domainInfo
	var reason string
	for _, m := range d.Metadata.Inner {
		if m.XMLName.Space != MetadataNS {
			continue
		}
		for _, a := range m.Attrs {
			v := strings.TrimSpace(a.Value)
			switch a.Name.Local {
			case "migratable":
				if isNo(v) {
					info.NotMigratable = "marked non-migratable in its drover metadata"
				}
			case "reason":
				reason = v
			case "anti_affinity":
				info.AntiAffinity = v
			case "anti_affinity_hard":
				info.AntiAffinityHard = !isNo(v) && v != ""
			case "preferred_node":
				info.PreferredNode = v
			}
		}
	}
	if info.NotMigratable != "" {
		if reason != "" {
			info.NotMigratable = "marked non-migratable: " + reason
		}
		return info, nil
	}
	if n := len(d.Devices.Hostdevs); n > 0 {
		info.NotMigratable = fmt.Sprintf("has %d host device(s) passed through", n)
		return info, nil
	}
	for _, fs := range d.Devices.Filesystems {
		if fs.Driver.Type == "virtiofs" || fs.Driver.Type == "path" || fs.Driver.Type == "" {
			info.NotMigratable = fmt.Sprintf("shares a host folder into %s", fs.Target.Dir)
			return info, nil
		}
	}
	return info, nil
}

func isNo(v string) bool {
	switch strings.ToLower(v) {
	case "no", "false", "0", "off":
		return true
	}
	return false
}

func underAny(path string, prefixes []string) bool {
	clean := filepath.Clean(path)
	for _, p := range prefixes {
		p = filepath.Clean(p)
		if clean == p || strings.HasPrefix(clean, p+string(filepath.Separator)) || p == "/" {
			return true
		}
	}
	return false
}
