package sqlite_test

import (
	"testing"

	"github.com/tes-traffic/tes/internal/storetest"
)

func TestDeviceStore(t *testing.T) {
	storetest.RunDevices(t, func(t *testing.T) storetest.DeviceBackend { return mustOpen(t) })
}
