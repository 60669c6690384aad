/*
 * EntraRevokeCallback: the script of a ServiceNow Scripted REST resource that receives
 * entra-revoke's outcome callbacks and writes them into the incident's work notes.
 *
 *   Scripted REST API: name "Entra revoke", API ID "revocation" (base path /api/<scope>/revocation)
 *   Resource: name "outcome", HTTP method POST, relative path /outcome,
 *             Requires authentication: off (the Standard Webhooks signature is the credential),
 *             Default ACLs: none; this script.
 *   System property x_entra_revoke.callback_secrets (type password2): the CALLBACK_SECRETS value,
 *             comma-separated during a rotation.
 *   The request names the incident in its callbackUrl, e.g.
 *     https://<instance>.service-now.com/api/<scope>/revocation/outcome?incident=INC0012345
 *   (a sign-in check's event also carries the ticket, used when the query has none).
 *
 * What it answers: 401 when no signature verifies or the timestamp is more than 5 minutes off
 * (entra-revoke retries: a clock or secret problem may be fixed meanwhile), 400 for a body that is
 * not an event, 410 when the incident does not exist (entra-revoke stops at once), 200 otherwise
 * - also for an event already noted: the webhook-id is written into the note, and a second copy
 * of the same event (a retry after a lost answer) is recognised by it and not noted again.
 */
(function process(/*RESTAPIRequest*/ request, /*RESTAPIResponse*/ response) {
    var TOLERANCE_SECONDS = 300;

    function answer(status, body) {
        response.setStatus(status);
        response.setBody(body);
    }

    // equal compares two strings in time independent of where they differ.
    function equal(a, b) {
        if (a.length !== b.length) {
            return false;
        }
        var diff = 0;
        for (var i = 0; i < a.length; i++) {
            diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
        }
        return diff === 0;
    }

    // verified reports whether one of the v1 signatures is the HMAC-SHA256 of
    // "{id}.{timestamp}.{body}" under one of the secrets.
    function verified(secrets, id, timestamp, body, header) {
        var given = [];
        var parts = header.split(' ');
        for (var i = 0; i < parts.length; i++) {
            if (parts[i].indexOf('v1,') === 0) {
                given.push(parts[i].substring(3));
            }
        }
        var crypto = new GlideCertificateEncryption();
        for (var s = 0; s < secrets.length; s++) {
            var secret = String(secrets[s]).replace(/^\s+|\s+$/g, '');
            if (secret.indexOf('whsec_') !== 0 || secret.length <= 6) {
                continue;
            }
            var mac = String(crypto.generateMac(secret.substring(6), 'HmacSHA256', id + '.' + timestamp + '.' + body));
            for (var g = 0; g < given.length; g++) {
                if (equal(mac, given[g])) {
                    return true;
                }
            }
        }
        return false;
    }

    function when(t) {
        return t ? String(t).replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC') : '';
    }

    function completedNote(data) {
        var lines = ['entra-revoke: revocation ' + data.status + ' (HTTP ' + data.httpStatus + ')' + (data.dryRun ? ', dry run' : '')];
        var results = data.results || [];
        for (var i = 0; i < results.length; i++) {
            var r = results[i];
            var line = '- ' + r.upn + ': ' + r.status;
            if (r.revokedAt) {
                line += ' at ' + when(r.revokedAt);
            }
            if (r.accessUntil) {
                line += '; existing access tokens may work until ' + when(r.accessUntil);
            }
            if (r.error && r.error.code) {
                line += ' (' + r.error.code + ')';
            }
            if (r.warning) {
                line += ' - ' + r.warning;
            }
            lines.push(line);
        }
        if (data.statusUrl) {
            lines.push('Status: ' + data.statusUrl);
        }
        return lines;
    }

    function watchNote(data) {
        var lines = ['entra-revoke: sign-in check ' + data.after + ' after the revocation'];
        var results = data.results || [];
        for (var i = 0; i < results.length; i++) {
            var r = results[i];
            var line = '- ' + r.upn + ': ' + r.finding + ' (' + r.signIns + ' sign-ins since ' + when(r.revokedAt) + ')';
            if (r.finding === 'signed_in_again') {
                line += ' - ACTION NEEDED: reset the password and review the sign-ins';
            }
            lines.push(line);
        }
        return lines;
    }

    var id = String(request.getHeader('webhook-id') || '');
    var timestamp = String(request.getHeader('webhook-timestamp') || '');
    var signature = String(request.getHeader('webhook-signature') || '');
    var body = String(request.body.dataString || '');
    var secrets = String(gs.getProperty('x_entra_revoke.callback_secrets') || '').split(',');

    if (!/^[\x21-\x7e]{1,256}$/.test(id) || !/^[0-9]{1,12}$/.test(timestamp) || !verified(secrets, id, timestamp, body, signature)) {
        return answer(401, { error: 'signature' });
    }
    var now = Math.floor(new GlideDateTime().getNumericValue() / 1000);
    if (Math.abs(now - parseInt(timestamp, 10)) > TOLERANCE_SECONDS) {
        return answer(401, { error: 'timestamp' });
    }

    var event;
    try {
        event = JSON.parse(body);
    } catch (e) {
        return answer(400, { error: 'body' });
    }
    var data = event && event.data;
    if (!data || (event.type !== 'revocation.completed' && event.type !== 'revocation.watch')) {
        return answer(400, { error: 'type' });
    }

    var number = request.queryParams && request.queryParams.incident ? String(request.queryParams.incident[0]) : String(data.ticket || '');
    if (!/^[A-Z]{2,10}[0-9]{4,20}$/.test(number)) {
        return answer(410, { error: 'no incident named' });
    }
    var incident = new GlideRecord('incident');
    incident.addQuery('number', number);
    incident.query();
    if (!incident.next()) {
        return answer(410, { error: 'no such incident' });
    }

    // Deduplicate on the event id written into an earlier note.
    var tag = '[entra-revoke event ' + id + ']';
    var journal = new GlideRecord('sys_journal_field');
    journal.addQuery('name', 'incident');
    journal.addQuery('element', 'work_notes');
    journal.addQuery('element_id', incident.getUniqueValue());
    journal.addQuery('value', 'CONTAINS', tag);
    journal.setLimit(1);
    journal.query();
    if (journal.hasNext()) {
        return answer(200, { duplicate: true });
    }

    var lines = event.type === 'revocation.completed' ? completedNote(data) : watchNote(data);
    lines.push(tag);
    incident.work_notes = lines.join('\n');
    incident.update();
    return answer(200, { noted: true });
})(request, response);
