"""Static word lists the dataset draws from.

Kept apart from the generator so new names, phrases or tags can be added
without touching generation logic. Non-ASCII entries are deliberate: the
connector must carry UTF-8 end to end (accents, CJK, emoji).
"""

FIRST_NAMES = [
    "Sarah", "James", "Emma", "Lucas", "Chloé", "Noah", "Mia", "Léa", "Oliver", "Sofia",
    "Zoë", "José", "Amélie", "Björn", "Søren", "Mateo", "Aïcha", "Hugo", "Inès", "Liam",
    "Olivia", "Ethan", "Camille", "Jules", "Anaïs", "Raphaël", "Grace", "Henry", "Isabella",
    "Jack", "Manon", "Théo", "Yasmine", "Ola", "François", "Łukasz", "Siobhán", "芳", "健二",
    "Priya", "Arjun", "Fatima", "Omar", "Ren", "Yuki", "Hannah", "Daniel", "Clara", "Elif",
]

LAST_NAMES = [
    "Johnson", "Smith", "Martin", "Bernard", "Dubois", "Müller", "Ñúñez", "García", "Rossi",
    "O'Brien", "Nguyen", "Kowalski", "Lefèvre", "Schröder", "Fernández", "Andersson", "Brown",
    "Wilson", "Taylor", "Moreau", "Laurent", "Girard", "Dupont", "Petit", "Leroy", "Chen",
    "王", "田中", "Okafor", "Haddad", "Patel", "Singh", "Kim", "Lee", "Walsh", "Ó Súilleabháin",
]

COMPANY_STEMS = [
    "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Pied Piper", "Vandelay",
    "Soylent", "Tyrell", "Cyberdyne", "Massive Dynamic", "Aperture", "Gringotts", "Duff",
    "Société Générale d'Études", "Café Zoë", "Müller & Söhne", "北京星辰科技", "Niño Logística",
    "Pizza 🍕 Luigi", "Øresund Freight", "Crème Brûlée SAS", "Kraków Software", "東京デザイン",
]

COMPANY_SUFFIXES = ["Corp", "Inc", "SAS", "GmbH", "Ltd", "Group", "Labs", "& Co", "SARL", ""]

INDUSTRIES = [
    "Technology", "Real Estate", "Healthcare", "Retail", "Logistics", "Finance",
    "Hospitality", "Construction", "Éducation", "Legal", None,
]

JOB_TITLES = [
    "CEO", "CTO", "Head of Sales", "Office Manager", "Procurement Lead", "Founder",
    "Directeur commercial", "Responsable achats", "Engineer", "Accountant", None, None,
]

DEAL_NAMES = [
    "Enterprise Plan", "Pro Upgrade", "Annual Renewal", "Pilot 3 lignes", "Expansion EMEA",
    "Starter → Business", "Multi-site rollout", "Support premium", "AI Receptionist add-on",
]

# Mixed case on purpose: Allo's own examples use "open" against an enum of
# OPEN/WON/LOST, and CRM-synced deals carry free-form stages.
DEAL_STATUSES = [
    ("open", 30), ("OPEN", 10), ("qualified", 10), ("negotiation", 10),
    ("WON", 20), ("LOST", 15), ("won", 5),
]

CLOSED_DEAL_STATUSES = {"WON", "LOST", "won", "lost"}

CURRENCIES = ["USD", "EUR", "GBP", None]

TAGS = [
    ("qualified", "#00AA00"), ("follow_up", "#FF8800"), ("interested", "#2266FF"),
    ("not_interested", "#999999"), ("meeting_booked", "#8E44AD"), ("to_call_back", "#E67E22"),
    ("support", "#16A085"), ("billing", "#C0392B"), ("urgent", "#FF0000"),
    ("à rappeler", "#F1C40F"), ("follow_up_later", "#7F8C8D"), ("vip ⭐", "#D4AC0D"),
]

CALL_TOPICS = [
    "upgrading their plan", "a billing issue on their last invoice", "a delivery delay",
    "booking a demo", "renewing the annual contract", "a technical problem with the app",
    "pricing for additional lines", "cancelling their subscription", "a refund request",
    "setting up call forwarding", "integrating with their CRM", "porting an existing number",
]

CALL_TOPICS_FR = [
    "un problème de facturation", "la mise à niveau de l'offre", "un retard de livraison",
    "la réservation d'une démo", "le renouvellement du contrat", "un souci technique sur l'appli",
]

NEXT_STEPS = [
    "Send a quote by Friday.", "Schedule a follow-up call next week.", "Escalate to support.",
    "Share onboarding docs.", "No further action needed.", "Book a demo with the sales lead.",
]

SMS_TEXTS = [
    "Hi, are you available for a quick call today?",
    "Thanks for your time earlier! Here is the link we discussed.",
    "Can we move our meeting to 3pm?",
    "Merci pour votre appel, je vous envoie le devis ce soir.",
    "Bonjour, pouvez-vous me rappeler ? C'est urgent 🙏",
    "Your appointment is confirmed for tomorrow at 10:00 ✅",
    "Got it 👍",
    "Zoë here — the invoice #4521 looks wrong, can you check?",
    "北京办公室的电话是多少？",
    "¿Podemos hablar mañana por la mañana?",
    "Perfect, see you then! 🎉",
    "Please call me back when you get this.",
    "Le colis est arrivé, merci !",
    "Can you resend the contract? The PDF didn't open.",
    "STOP",
]

TRANSCRIPT_USER_LINES = [
    "Hello, thanks for calling, how can I help you today?",
    "Sure, let me pull up your account.",
    "I understand, let me check that for you.",
    "I can send you a quote by email right after this call.",
    "Is there anything else I can help with?",
    "Perfect, I've noted everything down.",
    "Let me transfer you to the right person.",
]

TRANSCRIPT_EXTERNAL_LINES = [
    "Hi, I'm calling about {topic}.",
    "Yes, that's right.",
    "Could you tell me how much that would cost?",
    "We'd need it before the end of the month.",
    "Great, thank you very much!",
    "I tried earlier but nobody answered.",
    "My colleague Zoë Müller gave me your number.",
]

TRANSCRIPT_FR_USER_LINES = [
    "Bonjour, merci de votre appel, que puis-je faire pour vous ?",
    "Je regarde votre dossier tout de suite.",
    "Très bien, je vous envoie cela par e-mail.",
    "Autre chose pour votre service ?",
]

TRANSCRIPT_FR_EXTERNAL_LINES = [
    "Bonjour, j'appelle au sujet de {topic}.",
    "Oui, c'est bien ça.",
    "Ça coûterait combien exactement ?",
    "Merci beaucoup, bonne journée !",
]

AGENT_LINES = [
    "Hi, you've reached the assistant. What is the reason for your call?",
    "Thanks. Can I have your name, please?",
    "I'll connect you with a team member now.",
]

VOICEMAIL_LINES = [
    "Hi, this is {name}, I'm calling about {topic}. Please call me back.",
    "Bonjour, c'est {name}, rappelez-moi au sujet de {topic}, merci.",
]

WEBHOOK_EVENT_TYPES = [
    ("call.received", "Inbound call received"),
    ("call.triggered", "Outbound call initiated"),
    ("call.answered", "Call answered"),
    ("call.completed", "Call completed with recording, transcript and summary"),
    ("tag.added", "Tag added to a call"),
    ("tag.removed", "Tag removed from a call"),
    ("sms.received", "Inbound sms received"),
    ("sms.sent", "Outbound sms sent"),
    ("contact.created", "Contact created"),
    ("contact.updated", "Contact updated"),
    ("summary.updated", "Call summary updated"),
]

USERS = [
    # name, email local part, role, status
    ("Adrien Gaucher", "adrien", "ADMIN", "ACTIVE"),
    ("Marie Dubois", "marie", "MANAGER", "ACTIVE"),
    ("Jordan Lee", "jordan", "MEMBER", "ACTIVE"),
    ("Zoë Müller", "zoe", "MEMBER", "ACTIVE"),
    ("田中 健二", "kenji", "MEMBER", "ACTIVE"),
    ("Alex Kim", "alex", "MEMBER", "BLOCKED"),
    ("José Ñúñez", "jose", "MEMBER", "ACTIVE"),
    ("Camille Laurent", "camille", "MANAGER", "ACTIVE"),
    ("Priya Patel", "priya", "MEMBER", "ACTIVE"),
    ("Omar Haddad", "omar", "MEMBER", "BLOCKED"),
    ("Grace Walsh", "grace", "MEMBER", "ACTIVE"),
    ("Søren Andersson", "soren", "MEMBER", "ACTIVE"),
]

# (number, label, country, capabilities, transcript language)
ALLO_NUMBERS = [
    ("+14155550100", "Sales US", "US", ["VOICE", "SMS", "MMS"], "en"),
    ("+33187650200", "Support FR", "FR", ["VOICE", "SMS"], "fr"),
    ("+442071230300", "London Office", "GB", ["VOICE", "SMS"], "en"),
    ("+16285550400", "Outbound SDR", "US", ["VOICE", "SMS", "MMS"], "en"),
    ("+4930123450500", "Berlin Büro", "DE", ["VOICE"], "en"),
    ("+34911230600", "Madrid", "ES", ["VOICE", "SMS"], "en"),
]
