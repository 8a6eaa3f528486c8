package broker_test

import (
	"testing"

	"github.com/progressd/progressd/internal/broker"
	"github.com/progressd/progressd/internal/broker/brokertest"
)

func TestLocalConformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) brokertest.Nodes {
		return brokertest.Nodes{Open: func(*testing.T) broker.Broker { return broker.NewLocal() }}
	})
}
