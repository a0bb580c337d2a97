"""What makes an MMC-map, as pure functions on arrays: flow composition, head motion, colours, regions, FACS."""
