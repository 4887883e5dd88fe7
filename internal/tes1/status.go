package tes1

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/tes-traffic/tes"
)

// TypeStatus is a TES extension: a logged-in reporting unit asks what
// became of its own reports. Request payload: hex(IV || DES(JSON
// {"report_ids": [...]})); OK reply payload: hex(IV || DES(JSON {"reports":
// [tes.ReportStatus...]})), encrypted under the session key like the
// reports themselves. The original server does not know it and stays
// silent, so clients ask only with a short deadline.
const TypeStatus = "STATUS"

// MaxStatusIDs bounds one STATUS request.
const MaxStatusIDs = 500

type statusRequest struct {
	ReportIDs []string `json:"report_ids"`
}

type statusReply struct {
	Reports []tes.ReportStatus `json:"reports"`
}

func (s *Server) handleStatus(c *conn, log *slog.Logger, m *Message) (string, string, bool) {
	if s.cfg.Statuses == nil {
		s.refuse(c, log, ReplyUnknownType)
		return StatusError, ReplyUnknownType, false
	}
	if c.state != loggedIn || !c.user.Role.CanReport() {
		s.refuse(c, log, ReplyUnauthorized)
		return StatusError, ReplyUnauthorized, false
	}
	plain, err := s.openPayload(c, m)
	var req statusRequest
	if err == nil {
		err = json.Unmarshal(plain, &req)
	}
	if err != nil || len(req.ReportIDs) > MaxStatusIDs {
		s.refuse(c, log, ReplyProcessing)
		return StatusError, ReplyProcessing, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := s.cfg.Statuses.ReportStatuses(ctx, c.user.Name, req.ReportIDs)
	if err != nil {
		log.Error("report statuses", "err", err)
		return StatusError, ReplyUnavailable, false
	}
	b, err := json.Marshal(statusReply{Reports: list})
	if err != nil {
		return StatusError, ReplyProcessing, false
	}
	wire, err := c.cipher.Seal(nil, b)
	if err != nil {
		return StatusError, ReplyProcessing, false
	}
	return StatusOK, hex.EncodeToString(wire), false
}

// ErrStatusUnsupported means the server did not answer STATUS (the original
// server ignores it). The client is closed: dial again to keep sending.
var ErrStatusUnsupported = errors.New("tes1: the server does not answer STATUS (an original TES server?)")

// Statuses asks the server what became of the given reports. Against a
// server that does not know STATUS it waits at most wait, closes the
// connection and returns ErrStatusUnsupported.
func (c *Client) Statuses(ctx context.Context, reportIDs []string, wait time.Duration) ([]tes.ReportStatus, error) {
	b, err := json.Marshal(statusRequest{ReportIDs: reportIDs})
	if err != nil {
		return nil, err
	}
	wire, err := c.cipher.Seal(c.cfg.Rand, b)
	if err != nil {
		return nil, err
	}
	if err := c.send(ctx, TypeStatus, hex.EncodeToString(wire), ""); err != nil {
		return nil, err
	}
	if wait <= 0 {
		wait = 3 * time.Second
	}
	c.conn.SetReadDeadline(time.Now().Add(wait))
	frame, err := c.fr.Next()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.Close()
			return nil, ErrStatusUnsupported
		}
		return nil, err
	}
	m, err := ParseMessage(frame)
	if err != nil {
		return nil, err
	}
	text, _ := m.PayloadString()
	if m.Type == StatusError {
		if text == ReplyUnknownType {
			return nil, ErrStatusUnsupported
		}
		return nil, &ReplyError{Text: text}
	}
	raw, err := hex.DecodeString(text)
	if err != nil {
		return nil, err
	}
	plain, err := c.cipher.Open(raw)
	if err != nil {
		return nil, err
	}
	var rep statusReply
	if err := json.Unmarshal(plain, &rep); err != nil {
		return nil, err
	}
	return rep.Reports, nil
}
