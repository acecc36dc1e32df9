package scaffold

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"sigs.k8s.io/yaml"
)

// RecordFile is the file, at a service's root, that remembers how it was made.
const RecordFile = ".pave.yaml"

// TemplateName names Pave's service template in .pave.yaml.
const TemplateName = "service"

// Record is the content of .pave.yaml.
type Record struct {
	Template        string  `json:"template"`
	TemplateVersion int     `json:"templateVersion"`
	Answers         Answers `json:"answers"`
	// Routes are route templates ("GET /v1/orders/{id}") the gateway counts
	// requests by when the service does not report them itself (no kit);
	// the runtime reads them, pave new and pave upgrade only keep them.
	Routes []string `json:"routes,omitempty"`
	// Image is `pave build`'s section (internal/image.Settings); pave new
	// and pave upgrade only keep it.
	Image json.RawMessage `json:"image,omitempty"`
	// SLOs and Probes are the service's objectives and synthetic checks;
	// internal/alert/slo parses them, pave new and pave upgrade only keep them.
	SLOs   json.RawMessage `json:"slos,omitempty"`
	Probes json.RawMessage `json:"probes,omitempty"`
	// Shadow is the release shadow step's rules (safeRoutes,
	// ignoreHeaders, expectedChanges; internal/shadow.Settings); the
	// release engine reads them, pave new and pave upgrade only keep them.
	Shadow json.RawMessage `json:"shadow,omitempty"`
}

const recordHeader = `# Written by pave new and pave upgrade: the template version this repository
# is at and the answers it was made from. pave upgrade renders the recorded
# version as the merge base, so change it only through pave upgrade.
`

// Marshal renders the record as .pave.yaml's content.
func (r Record) Marshal() ([]byte, error) {
	b, err := yaml.Marshal(r)
	if err != nil {
		return nil, err
	}
	return append([]byte(recordHeader), b...), nil
}

// ParseRecord reads .pave.yaml strictly and validates the answers in it.
func ParseRecord(data []byte) (Record, error) {
	var r Record
	if err := yaml.UnmarshalStrict(data, &r); err != nil {
		return Record{}, fmt.Errorf("%s: %w", RecordFile, err)
	}
	if r.Template != TemplateName {
		return Record{}, fmt.Errorf("%s: template %q: this pave knows only %q", RecordFile, r.Template, TemplateName)
	}
	if r.TemplateVersion < 1 {
		return Record{}, fmt.Errorf("%s: templateVersion %d: want 1 or more", RecordFile, r.TemplateVersion)
	}
	if r.TemplateVersion > CurrentVersion() {
		return Record{}, fmt.Errorf("%s: templateVersion %d is newer than this pave knows (%d): update pave", RecordFile, r.TemplateVersion, CurrentVersion())
	}
	r.Answers = r.Answers.WithDefaults()
	if err := r.Answers.Validate(); err != nil {
		return Record{}, fmt.Errorf("%s: answers.%w", RecordFile, err)
	}
	return r, nil
}

// ReadRecord reads dir/.pave.yaml through root.
func readRecord(root *os.Root) (Record, error) {
	data, err := root.ReadFile(RecordFile)
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, fmt.Errorf("%s has no %s: is it a service made with pave new?", root.Name(), RecordFile)
	}
	if err != nil {
		return Record{}, err
	}
	return ParseRecord(data)
}
