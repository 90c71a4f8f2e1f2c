package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// serveBare serves the least a durable webhook receiver can do, as a bound for the real one: read
// the body, check its HMAC, publish it to a JetStream file stream (embedded server, 72 h duplicate
// window, event id as Nats-Msg-Id) and answer. With ack "sync" it waits for the PubAck as the
// receiver does; with "none" it does not wait for anything (not durable: a bound, not a design).
func serveBare(addr, key, ack string) error {
	h, stop, err := bareHandler(key, ack)
	if err != nil {
		return err
	}
	defer stop()
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintln(os.Stderr, "bare receiver (ack", ack+") on", addr)
	return srv.ListenAndServe()
}

// bareHandler starts the bare receiver's embedded NATS and returns its handler and a stop func.
func bareHandler(key, ack string) (http.Handler, func(), error) {
	if ack != "sync" && ack != "none" {
		return nil, nil, fmt.Errorf("-bare-ack %q: want sync or none", ack)
	}
	dir, err := os.MkdirTemp("", "webhookload-bare-")
	if err != nil {
		return nil, nil, err
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	go ns.Start()
	stop := func() { ns.Shutdown(); ns.WaitForShutdown(); os.RemoveAll(dir) }
	if !ns.ReadyForConnections(10 * time.Second) {
		stop()
		return nil, nil, fmt.Errorf("embedded NATS did not start")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		stop()
		return nil, nil, err
	}
	stop = func() { nc.Close(); ns.Shutdown(); ns.WaitForShutdown(); os.RemoveAll(dir) }
	js, err := jetstream.New(nc)
	if err == nil {
		_, err = js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "BARE", Subjects: []string{"bare.>"},
			Storage: jetstream.FileStorage, Duplicates: 72 * time.Hour})
	}
	if err != nil {
		stop()
		return nil, nil, err
	}
	var seq atomic.Uint64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write(body)
		sig, _ := hex.DecodeString(r.Header.Get("Cko-Signature"))
		if !hmac.Equal(sig, mac.Sum(nil)) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		msg := &nats.Msg{Subject: "bare.payment_captured", Data: body, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, "evt_bare_"+strconv.FormatUint(seq.Add(1), 10))
		if ack == "none" {
			err = nc.PublishMsg(msg)
		} else {
			_, err = js.PublishMsg(r.Context(), msg)
		}
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, `{"outcome":"stored"}`+"\n")
	})
	return h, stop, nil
}
