"""Fine-tune stage: few-label classifiers on a backbone (linear probe or full fine-tune)."""
