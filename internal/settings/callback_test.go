package settings

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestCallbackSettings(t *testing.T) {
	t.Parallel()
	storage := webhookOnly.with("AzureWebJobsStorage", "UseDevelopmentStorage=true")
	on := storage.with("CALLBACK_ALLOWED_HOSTS", "hooks.example.com, *.service-now.com", "CALLBACK_SECRETS", secondSecret+","+testSecret)

	s := mustLoad(t, on)
	if !s.CallbacksEnabled() || s.CallbackKeys.Len() != 2 || s.CallbackQueue != "revoke-callbacks" {
		t.Errorf("callbacks = %v, %d keys, queue %q; want on, 2 keys, revoke-callbacks", s.CallbacksEnabled(), s.CallbackKeys.Len(), s.CallbackQueue)
	}
	if !s.CallbackHosts.Allowed("acme.service-now.com") || s.CallbackHosts.Allowed("service-now.com") || !s.CallbackHosts.Allowed("HOOKS.example.com") {
		t.Errorf("allow-list does not match exact and *.suffix entries as documented")
	}
	want := []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 8 * time.Hour}
	if len(s.CallbackRetryDelays) != 5 || s.CallbackRetryDelays[4] != want[4] || s.CallbackRetryDelays[0] != want[0] {
		t.Errorf("CallbackRetryDelays = %v; want %v", s.CallbackRetryDelays, want)
	}
	// Entra callers alone: the queue secret signs the callback queue, so callbacks start; without
	// any queue secret they cannot.
	entraCallbacks := env{"ENTRA_TENANT_ID": tenantID, "ENTRA_AUDIENCE": clientID}.with("AzureWebJobsStorage", "UseDevelopmentStorage=true", "CALLBACK_ALLOWED_HOSTS", "hooks.example.com", "CALLBACK_SECRETS", testSecret)
	if s := mustLoad(t, entraCallbacks.with("QUEUE_SECRETS", secondSecret)); !s.CallbacksEnabled() || s.QueueSigningKeys().Len() != 1 {
		t.Errorf("callbacks with Entra callers and QUEUE_SECRETS: enabled %v, %d queue keys; want on, 1", s.CallbacksEnabled(), s.QueueSigningKeys().Len())
	}
	if _, err := Load(entraCallbacks.get); !strings.Contains(fmt.Sprint(problems(err)), "callbacks need a queue secret") {
		t.Errorf("callbacks with Entra callers and no queue secret: problems %q; want the missing queue secret named", problems(err))
	}
	if off := mustLoad(t, webhookOnly); off.CallbacksEnabled() {
		t.Errorf("callbacks on without CALLBACK_ALLOWED_HOSTS")
	}

	tests := []struct {
		name string
		env  env
		want string // the setting the one problem names
	}{
		{"hosts without secrets", storage.with("CALLBACK_ALLOWED_HOSTS", "hooks.example.com"), "CALLBACK_SECRETS: is required"},
		{"short secret", on.with("CALLBACK_SECRETS", "whsec_c2hvcnQ="), "CALLBACK_SECRETS: secret 1"},
		{"without storage", webhookOnly.with("CALLBACK_ALLOWED_HOSTS", "hooks.example.com", "CALLBACK_SECRETS", testSecret), "CALLBACK_ALLOWED_HOSTS: callbacks need storage"},
		{"not a host", on.with("CALLBACK_ALLOWED_HOSTS", "https://hooks.example.com/x"), "CALLBACK_ALLOWED_HOSTS:"},
		{"bare wildcard", on.with("CALLBACK_ALLOWED_HOSTS", "*.com"), "CALLBACK_ALLOWED_HOSTS:"},
		{"bad queue", on.with("CALLBACK_QUEUE", "Callbacks"), "CALLBACK_QUEUE:"},
		{"descending delays", on.with("CALLBACK_RETRY_DELAYS", "5m,1m,30m,2h,8h"), "CALLBACK_RETRY_DELAYS:"},
		{"four delays", on.with("CALLBACK_RETRY_DELAYS", "1m,5m,30m,2h"), "CALLBACK_RETRY_DELAYS:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(tt.env.get)
			got := problems(err)
			if len(got) != 1 || !strings.HasPrefix(got[0], tt.want) {
				t.Fatalf("Load(%s) problems = %q; want one starting %q", tt.name, got, tt.want)
			}
			if strings.Contains(got[0], "c2hvcnQ") || strings.Contains(got[0], testSecret) {
				t.Errorf("problem %q repeats a secret", got[0])
			}
		})
	}
}
