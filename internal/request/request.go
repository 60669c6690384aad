// Package request is the revocation request model (openapi.yaml): strict decoding of the JSON body and
// its validation, including Entra ID's user principal name rules.
package request

// MaxBodyBytes is the largest request body accepted (request contract).
const MaxBodyBytes = 64 << 10

// MaxUsers is the largest number of users in one request.
const MaxUsers = 100

// Body is the JSON body of POST /api/revoke and of an unsigned queue message.
type Body struct {
	UPN         string   `json:"upn,omitempty" validate:"omitempty,upn_or_id"`
	UPNs        []string `json:"upns,omitempty" validate:"omitempty,min=1,max=100,dive,upn_or_id"`
	Ticket      string   `json:"ticket,omitempty" validate:"max=256,printable"`
	Reason      string   `json:"reason,omitempty" validate:"max=1024,nocontrol"`
	RequestedBy string   `json:"requestedBy,omitempty" validate:"max=256,printable"`
	DryRun      bool     `json:"dryRun,omitempty"`
	// CallbackURL is where the outcome events go (docs/callbacks.md), checked against the
	// validator's allowed hosts. It is a credential of sorts: logs and telemetry name its host only.
	CallbackURL string `json:"callbackUrl,omitempty"`
}

// Users returns the requested users in input order, whichever of upn/upns was used.
func (b Body) Users() []string {
	if b.UPN != "" {
		return []string{b.UPN}
	}
	return b.UPNs
}
