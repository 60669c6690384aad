package cli

import (
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/entra-revoke/entra-revoke/internal/graph"
	"github.com/entra-revoke/entra-revoke/internal/queue"
	"github.com/entra-revoke/entra-revoke/internal/settings"
	"github.com/entra-revoke/entra-revoke/internal/state"
)

// storageCredential is how the handler signs in to an identity-based AzureWebJobsStorage: the
// host's storage identity (AzureWebJobsStorage__clientId), which may be another user-assigned
// identity than Graph's, else the app's own credential. Nil for a connection string, whose key
// or SAS signs instead.
func storageCredential(sto settings.Storage, cred azcore.TokenCredential) (azcore.TokenCredential, error) {
	switch {
	case !sto.IdentityBased():
		return nil, nil
	case sto.ClientID == "":
		return cred, nil
	}
	c, err := graph.ManagedIdentity(sto.ClientID)
	if err != nil {
		return nil, fmt.Errorf("storage identity: %w", err)
	}
	return c, nil
}

// queueConfig is the queue name on the settings' storage account.
func queueConfig(sto settings.Storage, cred azcore.TokenCredential, name string) queue.Config {
	return queue.Config{
		ServiceURL: sto.QueueServiceURL, AccountName: sto.AccountName, AccountKey: sto.AccountKey,
		SAS: sto.SharedAccessSignature, Credential: cred, Queue: name,
	}
}

// tableConfig is the state table on the settings' storage account.
func tableConfig(cfg config, cred azcore.TokenCredential) state.TableConfig {
	sto := cfg.Storage
	return state.TableConfig{
		ServiceURL: sto.TableServiceURL, AccountName: sto.AccountName, AccountKey: sto.AccountKey,
		SAS: sto.SharedAccessSignature, Credential: cred, Table: cfg.StateTable,
		RatePerMinute: cfg.MaxRevocationsPerMinute,
	}
}
