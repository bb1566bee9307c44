# Bash completion for vethtrace: commands, options and option values, as vethtrace itself knows them.
#
# It asks the executable through System.CommandLine's [suggest] directive (`vethtrace "[suggest:POSITION]" "LINE"`
# prints the candidates, one a line), so it never falls out of step with the installed version. Where vethtrace has
# nothing to offer (capture files, interface names) bash completes file names.
#
# Enable it for one shell:   source completions/vethtrace.bash
# or for every shell:        cp completions/vethtrace.bash /etc/bash_completion.d/vethtrace   (bash-completion package)
#                        or  echo 'source /path/to/vethtrace.bash' >> ~/.bashrc

_vethtrace_complete() {
    local typed=${COMP_WORDS[0]}
    # System.CommandLine recognises the line only when it starts with the command's own name, so a path
    # (./vethtrace, ~/.dotnet/tools/vethtrace) is replaced by the name and the cursor position moved to match.
    local line="vethtrace${COMP_LINE:${#typed}}"
    local position=$(( COMP_POINT - ${#typed} + 9 ))
    local candidates
    candidates=$("$typed" "[suggest:$position]" "$line" 2>/dev/null) || return 0
    local current=${COMP_WORDS[COMP_CWORD]} candidate
    COMPREPLY=()
    while IFS= read -r candidate; do
        # The Windows-style aliases (/?, /h) and -? are noise in a Unix shell.
        [[ $candidate == /* || $candidate == '-?' || -z $candidate ]] && continue
        [[ $candidate == "$current"* ]] && COMPREPLY+=("$candidate")
    done <<<"$candidates"
}
complete -o default -o bashdefault -F _vethtrace_complete vethtrace
