package main

import (
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"knetrecon/internal/events"
)

// publisher returns the webhooks' Publisher. Room-making (purging applied history from a full
// stream) goes through a connection of its own with the keeper's credential when there is one
// (always with the embedded server): the receiver's credential may publish webhooks and read the
// stream's state, never purge. conn is the receiver's connection settings, whose URL, TLS and
// in-process server the keeper's connection shares.
func (m *Main) publisher(conn events.ConnConfig) (*events.Publisher, error) {
	k := m.Config.Keeper
	if k.Password == "" {
		m.Log.Info("no keeper credential (KNETRECON_NATS_KEEPER_PASSWORD): room in a full stream is made with the receiver's own credential, which the shipped NATS configurations do not allow to purge")
		return events.NewPublisher(m.js), nil
	}
	kc := conn
	kc.Name = conn.Name + "-keeper"
	kc.Token, kc.CredsFile, kc.NKeySeedFile = "", "", ""
	kc.User, kc.Password = k.User, k.Password
	kc.OnDisconnect, kc.OnReconnect = nil, nil
	var err error
	if m.keeper, err = events.Connect(kc); err != nil {
		return nil, fmt.Errorf("keeper connection (KNETRECON_NATS_KEEPER_USER): %w", err)
	}
	js, err := jetstream.New(m.keeper)
	if err != nil {
		return nil, fmt.Errorf("keeper jetstream: %w", err)
	}
	m.Log.Debug("room in a full stream is made through the keeper's connection", zap.String("user", k.User))
	return events.NewPublisherRoom(m.js, events.NewRoom(js)), nil
}
