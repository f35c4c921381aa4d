package orchestrator

// evacuatedNote is why an evacuated node (Policy.Evacuate, `drover evacuate NODE`)
// stays paused: it was drained for good (decommission), takes no VMs again, and is
// neither patched nor rebooted.
const evacuatedNote = "evacuated by drover evacuate: drained and left paused for good; it takes no VMs until it is resumed on the platform"
