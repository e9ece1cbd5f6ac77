"""Intune's side: certificate profiles, certificate states, report rows, managed devices."""
