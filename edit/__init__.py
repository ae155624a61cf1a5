"""Attribute editing: the S space of our synthesis networks, SeFa, StyleSpace and InterfaceGAN directions."""
