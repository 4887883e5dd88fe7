package tlssuite

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/tes-traffic/tes"
	"github.com/tes-traffic/tes/internal/enroll"
	"github.com/tes-traffic/tes/internal/tes1"
)

// serveEnroll handles the one ENROLL request of an enrolment connection.
func (s *Server) serveEnroll(c *conn, log *slog.Logger, cs tls.ConnectionState) {
	fr := tes1.NewFrameReader(c.tls, MaxMessage)
	c.Conn.SetReadDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	frame, err := fr.Next()
	if err != nil {
		s.readFailed(c, log, err)
		return
	}
	c.SetBusy(true)
	defer c.SetBusy(false)
	status, text := s.handleEnroll(c, log, frame, cs)
	s.reply(c, status, text)
	c.state = closed
}

func (s *Server) handleEnroll(c *conn, log *slog.Logger, frame []byte, cs tls.ConnectionState) (status, text string) {
	if c.state != enrolling {
		return tes1.StatusError, tes1.ReplyUnauthorized
	}
	m, err := tes1.ParseMessage(frame)
	if err != nil {
		return tes1.StatusError, tes1.ReplyMalformed
	}
	if m.Type != TypeEnroll {
		return tes1.StatusError, tes1.ReplyUnknownType
	}
	req, err := parseEnroll(m)
	if err != nil {
		s.enrollRefused(c, log, "", tes1.ReplyMalformed, err)
		return tes1.StatusError, tes1.ReplyMalformed
	}
	exporter, err := cs.ExportKeyingMaterial(enroll.ExporterLabel, nil, enroll.ExporterLen)
	if err != nil {
		return tes1.StatusError, tes1.ReplyProcessing
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, cert, err := s.enrollSvc.Redeem(ctx, &enroll.Request{TokenID: req.TokenID, CSR: req.CSR, Proof: req.Proof}, exporter)
	if err != nil {
		reply := tes1.ReplyUnavailable
		switch {
		case errors.Is(err, enroll.ErrInvalidToken):
			reply = ReplyInvalidToken
		case errors.Is(err, enroll.ErrExpired):
			reply = ReplyTokenExpired
		case errors.Is(err, enroll.ErrUsed):
			reply = ReplyTokenUsed
		case errors.Is(err, enroll.ErrUserNotAllowed):
			reply = ReplyUserNotAllowed
		case tes.ErrorCode(err) == tes.EINVALID:
			reply = ReplyBadRequest
		default:
			log.Error("enrolment failed", "token", req.TokenID, "err", err)
		}
		s.enrollRefused(c, log, req.TokenID, reply, err)
		return tes1.StatusError, reply
	}
	s.Stats.Enrolled.Add(1)
	log.Info("device enrolled", "device", d.ID, "user", d.User, "key", d.KeyFingerprint)
	b, _ := json.Marshal(enrollReply{DeviceID: d.ID, User: d.User, Certificate: cert.Raw, CA: s.cfg.CA.Cert.Raw})
	return tes1.StatusOK, string(b)
}

// enrollRefused logs and audits a refused enrolment (the token ID is
// public; the secret never reaches the server).
func (s *Server) enrollRefused(c *conn, log *slog.Logger, tokenID, reply string, err error) {
	s.Stats.CountRefused(reply)
	log.Warn("enrolment refused", "token", tokenID, "reason", reply, "err", err)
	if s.cfg.Audit != nil {
		subject := "remote:" + c.remote
		if tokenID != "" {
			subject = "device:" + tokenID
		}
		s.cfg.Audit(&tes.Event{Actor: "anonymous", Action: "device.enroll_refused", Subject: subject,
			Detail: "reason=" + strings.ReplaceAll(reply, " ", "_") + " remote=" + c.remote})
	}
}
