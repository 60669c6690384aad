/*
 * EntraRevoke: a ServiceNow Script Include (Name: EntraRevoke, Client callable: off) that asks
 * entra-revoke to sign a user out of Microsoft Entra ID, authenticating with a Standard Webhooks
 * signature. See integrations/ticketing/README.md for the system properties it reads.
 *
 *   var res = new EntraRevoke().revoke('alice@contoso.com', current.number, 'Lost phone', requestId);
 *   // res.status: HTTP status (200 revoked or dry run, 202 queued, 403 protected/denied, ...)
 *   // res.body:   entra-revoke's JSON answer
 *   // res.requestId: keep it on the record and pass it again when retrying the same request
 *   // res.statusUrl: with 202 queued, the status link: keep it on the record and read it later
 *   var st = new EntraRevoke().status(res.statusUrl);
 *   // st.final: false while queued (poll again after st.retryAfter seconds); st.revoked: every
 *   // user revoked or dry run; st.status, st.body: entra-revoke's answer
 *
 * The signature is HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}" with the secret's
 * key, base64-encoded. A secret is "whsec_" + base64(key), and GlideCertificateEncryption's
 * generateMac takes the key base64-encoded, so the part after "whsec_" is passed as it is.
 */
var EntraRevoke = Class.create();
EntraRevoke.prototype = {
    initialize: function() {},

    // headers returns the three Standard Webhooks headers for body (a string, sent byte for byte).
    headers: function(secret, id, timestamp, body) {
        if (typeof secret !== 'string' || secret.indexOf('whsec_') !== 0 || secret.length <= 6) {
            throw new Error('EntraRevoke: the webhook secret must be whsec_ followed by base64');
        }
        var key = secret.substring(6);
        var signed = id + '.' + timestamp + '.' + body;
        var mac = new GlideCertificateEncryption().generateMac(key, 'HmacSHA256', signed);
        return {
            'webhook-id': id,
            'webhook-timestamp': String(timestamp),
            'webhook-signature': 'v1,' + mac
        };
    },

    // body returns the request JSON with every non-ASCII character escaped (\uXXXX): the bytes
    // signed and the bytes sent are then the same whatever character set either step uses.
    body: function(upn, ticket, reason, requestedBy) {
        var json = JSON.stringify({
            upn: String(upn),
            ticket: ticket ? String(ticket) : '',
            reason: reason ? String(reason) : '',
            requestedBy: requestedBy ? String(requestedBy) : ''
        });
        return json.replace(/[\u007f-\uffff]/g, function(c) {
            return '\\u' + ('0000' + c.charCodeAt(0).toString(16)).slice(-4);
        });
    },

    // revoke sends one signed request. Pass the requestId of an earlier attempt to retry it: the
    // handler then answers with its first response instead of revoking again.
    revoke: function(upn, ticket, reason, requestId) {
        var endpoint = gs.getProperty('x_entra_revoke.endpoint');      // https://<app>.azurewebsites.net/api/revoke
        var secret = gs.getProperty('x_entra_revoke.webhook_secret');  // type password2
        var functionKey = gs.getProperty('x_entra_revoke.function_key'); // type password2
        if (!endpoint || !secret || !functionKey) {
            throw new Error('EntraRevoke: set x_entra_revoke.endpoint, .webhook_secret and .function_key');
        }
        var id = requestId || ('msg_' + gs.generateGUID());
        var timestamp = Math.floor(new GlideDateTime().getNumericValue() / 1000);
        var body = this.body(upn, ticket, reason, 'servicenow:' + gs.getUserName());
        var signature = this.headers(secret, id, timestamp, body);

        var request = new sn_ws.RESTMessageV2();
        request.setEndpoint(endpoint);
        request.setHttpMethod('post');
        request.setRequestHeader('Content-Type', 'application/json');
        request.setRequestHeader('x-functions-key', functionKey);
        for (var name in signature) {
            request.setRequestHeader(name, signature[name]);
        }
        request.setRequestBody(body);
        // The handler answers within its 25 s Graph budget, or queues the work and answers 202.
        request.setHttpTimeout(60000);
        var response = request.execute();
        var status = response.getStatusCode();
        var result = { status: status, body: response.getBody(), requestId: id, statusUrl: null };
        if (status == 202) {
            result.statusUrl = this.statusLink(endpoint, response.getHeader('Location'));
        }
        return result;
    },

    // statusLink returns link when it is an entra-revoke status link under the configured base
    // (x_entra_revoke.status_base, default the endpoint's scheme and host), else null: a link
    // taken from a response is only followed where it is expected to point.
    statusLink: function(endpoint, link) {
        if (link === null || link === undefined) {
            return null;
        }
        link = String(link); // getHeader may hand over a Java string
        var base = gs.getProperty('x_entra_revoke.status_base') || String(endpoint).replace(/^([a-z]+:\/\/[^\/?#]+).*$/, '$1');
        if (link.indexOf(base + '/') !== 0 || !/\/api\/revoke\/status\/[A-Za-z0-9_-]+$/.test(link)) {
            return null;
        }
        return link;
    },

    // status reads a status link once. The link is its own credential: nothing else is sent.
    // Poll again after retryAfter seconds while final is false (a scheduled job or a flow's
    // Wait step; never gs.sleep in a loop, which holds a worker thread).
    status: function(statusUrl) {
        var endpoint = gs.getProperty('x_entra_revoke.endpoint');
        if (!statusUrl || this.statusLink(endpoint, String(statusUrl)) === null) {
            throw new Error('EntraRevoke: not a status link of the configured endpoint: ' + statusUrl);
        }
        var request = new sn_ws.RESTMessageV2();
        request.setEndpoint(String(statusUrl));
        request.setHttpMethod('get');
        request.setHttpTimeout(60000);
        var response = request.execute();
        var status = response.getStatusCode();
        var retryAfter = parseInt(response.getHeader('Retry-After'), 10);
        return {
            status: status,
            body: response.getBody(),
            final: status != 202,
            revoked: status == 200,
            retryAfter: isNaN(retryAfter) || retryAfter < 1 ? 10 : Math.min(retryAfter, 300)
        };
    },

    type: 'EntraRevoke'
};
