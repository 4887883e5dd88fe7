package officerui

import (
	"encoding/json"
	"net/http"

	"github.com/tes-traffic/tes"
)

// httpStatus maps a domain error code to an HTTP status. It is the only
// place that does, for pages and the API alike.
func httpStatus(err error) int {
	switch tes.ErrorCode(err) {
	case "":
		return http.StatusOK
	case tes.EINVALID:
		return http.StatusBadRequest
	case tes.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case tes.EFORBIDDEN:
		return http.StatusForbidden
	case tes.ENOTFOUND:
		return http.StatusNotFound
	case tes.ECONFLICT:
		return http.StatusConflict
	case tes.ERATELIMIT:
		return http.StatusTooManyRequests
	case tes.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// errorText is what a user may see of err: the domain message, or a generic
// sentence for anything internal. Internal errors are logged here, with the
// request, so that a 500 is never silent and never shows a cause.
func (ui *UI) errorText(r *http.Request, err error) string {
	if httpStatus(err) == http.StatusInternalServerError {
		ui.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		return "Something went wrong on the server. The error has been logged; please try again or tell your administrator."
	}
	if tes.ErrorCode(err) == tes.EUNAVAILABLE {
		ui.log.Warn("store unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	return tes.ErrorMessage(err)
}

// pageError renders the error page for err with its mapped status.
func (ui *UI) pageError(w http.ResponseWriter, r *http.Request, err error) {
	ui.renderError(w, r, httpStatus(err), ui.errorText(r, err))
}

// apiError writes {"error": message, "code": code} with the mapped status.
func (ui *UI) apiError(w http.ResponseWriter, r *http.Request, err error) {
	code := tes.ErrorCode(err)
	if code == "" {
		code = tes.EINTERNAL
	}
	writeJSON(w, httpStatus(err), apiErrorBody{Error: ui.errorText(r, err), Code: code})
}

type apiErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

// notFound answers unknown page paths.
func (ui *UI) notFound(w http.ResponseWriter, r *http.Request) {
	ui.renderError(w, r, http.StatusNotFound, "There is no page at this address. Check the link, or go back to the queue.")
}

// apiNotFound answers unknown /api/ paths and wrong methods on API paths in
// JSON, never with an HTML page.
func (ui *UI) apiNotFound(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, apiErrorBody{Error: "No such API endpoint or method.", Code: tes.ENOTFOUND})
}

// crossOriginDenied answers a POST that http.CrossOriginProtection refused.
func (ui *UI) crossOriginDenied(w http.ResponseWriter, r *http.Request) {
	ui.log.Warn("cross-origin request refused", "path", r.URL.Path, "origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
	msg := "This request came from another site and was refused. Use the dashboard's own forms."
	if isAPI(r) {
		writeJSON(w, http.StatusForbidden, apiErrorBody{Error: msg, Code: tes.EFORBIDDEN})
		return
	}
	ui.renderError(w, r, http.StatusForbidden, msg)
}
