"""Getting data into tsguard: file replay and the MQTT bridge, on one shared producer."""
