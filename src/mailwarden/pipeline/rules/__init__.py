"""Transport (mail flow) rules: compiled rule sets (`compiled`), their outcome and precedence
(`outcome`, used by `decide`) and the `rules` stage (`stage`). See docs/rules.md."""
