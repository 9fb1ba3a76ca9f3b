"""
The IRC front end: real IRC clients (irssi, WeeChat, HexChat, ii) in the
same rooms as everyone else. Room C{lobby} is channel C{#lobby}.

  - L{chatservice.frontends.irc.renderer}: events as IRC lines and numerics.
  - L{chatservice.frontends.irc.split}: long texts cut to IRC's 512 bytes.
  - L{chatservice.frontends.irc.caps}: IRCv3 capabilities and CAP.
  - L{chatservice.frontends.irc.tags}: IRCv3 message tags.
  - L{chatservice.frontends.irc.protocol}: registration and commands.
"""
