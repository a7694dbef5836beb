"""Plain nn.Modules used by the families and apps (MLP, conv encoder/decoder, UNet, sequence models), and presets."""
