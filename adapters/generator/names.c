/*
 * The generator's word tables. Populations are rounded figures in thousands, near the 2021
 * censuses; they only need to give realistic skew, not exact numbers. Scotland and Wales
 * use their former regions and preserved counties, as randomuser's "state" field does.
 */
#include "names.h"

#define WORDS(name, ...)                                                           \
	static const char *const name##_list[] = {__VA_ARGS__};                     \
	const tally__gen_words_t tally__gen_##name = {                              \
		name##_list, sizeof(name##_list) / sizeof(name##_list[0])}

/* Sorted by population, largest first: a generator with R regions takes the first R. */
const tally__gen_county_t tally__gen_counties[] = {
	{"Greater London", 8800, {"London", "Croydon", "Barnet", "Ealing", "Bromley", "Enfield"},
	 {"E", "N", "SE", "SW", "W", "NW"}},
	{"West Midlands", 2920, {"Birmingham", "Coventry", "Wolverhampton", "Dudley", "Walsall", "Solihull"},
	 {"B", "CV", "WV", "DY", "WS"}},
	{"Greater Manchester", 2870, {"Manchester", "Salford", "Bolton", "Stockport", "Oldham", "Wigan"},
	 {"M", "BL", "OL", "SK", "WN"}},
	{"West Yorkshire", 2350, {"Leeds", "Bradford", "Wakefield", "Huddersfield", "Halifax"},
	 {"LS", "BD", "WF", "HD", "HX"}},
	{"Strathclyde", 2300, {"Glasgow", "Paisley", "Kilmarnock", "Ayr", "Hamilton"},
	 {"G", "PA", "KA", "ML"}},
	{"Hampshire", 1860, {"Southampton", "Portsmouth", "Basingstoke", "Winchester"},
	 {"SO", "PO", "RG", "GU"}},
	{"Kent", 1850, {"Maidstone", "Canterbury", "Ashford", "Dartford", "Tunbridge Wells"},
	 {"ME", "CT", "TN", "DA"}},
	{"Essex", 1830, {"Chelmsford", "Colchester", "Basildon", "Southend-on-Sea"},
	 {"CM", "CO", "SS"}},
	{"Lancashire", 1530, {"Preston", "Blackpool", "Blackburn", "Lancaster", "Burnley"},
	 {"PR", "FY", "BB", "LA"}},
	{"Merseyside", 1420, {"Liverpool", "Birkenhead", "St Helens", "Southport"},
	 {"L", "CH", "WA"}},
	{"South Yorkshire", 1390, {"Sheffield", "Doncaster", "Rotherham", "Barnsley"},
	 {"S", "DN"}},
	{"Surrey", 1200, {"Guildford", "Woking", "Epsom", "Reigate"}, {"GU", "KT", "RH"}},
	{"Hertfordshire", 1200, {"St Albans", "Watford", "Stevenage", "Hemel Hempstead"},
	 {"AL", "WD", "SG", "HP"}},
	{"Devon", 1200, {"Exeter", "Plymouth", "Torquay", "Barnstaple"}, {"EX", "PL", "TQ"}},
	{"Nottinghamshire", 1170, {"Nottingham", "Mansfield", "Newark-on-Trent", "Worksop"},
	 {"NG"}},
	{"North Yorkshire", 1160, {"York", "Harrogate", "Scarborough", "Middlesbrough"},
	 {"YO", "HG", "TS"}},
	{"Tyne and Wear", 1130, {"Newcastle upon Tyne", "Sunderland", "Gateshead", "South Shields"},
	 {"NE", "SR"}},
	{"Staffordshire", 1130, {"Stoke-on-Trent", "Stafford", "Tamworth", "Burton upon Trent"},
	 {"ST", "WS", "DE"}},
	{"Leicestershire", 1100, {"Leicester", "Loughborough", "Hinckley", "Melton Mowbray"},
	 {"LE"}},
	{"Cheshire", 1100, {"Chester", "Warrington", "Crewe", "Macclesfield"}, {"CH", "CW", "WA"}},
	{"Lincolnshire", 1090, {"Lincoln", "Grimsby", "Boston", "Grantham"}, {"LN", "DN", "PE"}},
	{"Derbyshire", 1060, {"Derby", "Chesterfield", "Buxton", "Ilkeston"}, {"DE", "S"}},
	{"Somerset", 970, {"Taunton", "Bath", "Weston-super-Mare", "Yeovil"}, {"TA", "BA", "BS"}},
	{"Norfolk", 920, {"Norwich", "King's Lynn", "Great Yarmouth", "Thetford"}, {"NR", "PE"}},
	{"Gloucestershire", 920, {"Gloucester", "Cheltenham", "Stroud", "Tewkesbury"}, {"GL"}},
	{"Berkshire", 920, {"Reading", "Slough", "Windsor", "Newbury"}, {"RG", "SL"}},
	{"Cambridgeshire", 900, {"Cambridge", "Peterborough", "Ely", "Huntingdon"}, {"CB", "PE"}},
	{"West Sussex", 880, {"Crawley", "Worthing", "Chichester", "Horsham"}, {"RH", "BN", "PO"}},
	{"Lothian", 870, {"Edinburgh", "Livingston", "Musselburgh", "Dalkeith"}, {"EH"}},
	{"County Durham", 870, {"Durham", "Darlington", "Hartlepool", "Stockton-on-Tees"},
	 {"DH", "DL", "TS"}},
	{"East Sussex", 850, {"Brighton", "Eastbourne", "Hastings", "Lewes"}, {"BN", "TN"}},
	{"Buckinghamshire", 840, {"Milton Keynes", "Aylesbury", "High Wycombe", "Amersham"},
	 {"MK", "HP"}},
	{"Northamptonshire", 790, {"Northampton", "Kettering", "Corby", "Wellingborough"}, {"NN"}},
	{"Dorset", 780, {"Bournemouth", "Poole", "Dorchester", "Weymouth"}, {"BH", "DT"}},
	{"Suffolk", 760, {"Ipswich", "Bury St Edmunds", "Lowestoft", "Felixstowe"}, {"IP", "NR"}},
	{"Wiltshire", 730, {"Swindon", "Salisbury", "Chippenham", "Trowbridge"}, {"SN", "SP"}},
	{"Oxfordshire", 730, {"Oxford", "Banbury", "Abingdon", "Witney"}, {"OX"}},
	{"Bedfordshire", 700, {"Luton", "Bedford", "Dunstable", "Leighton Buzzard"}, {"LU", "MK"}},
	{"County Antrim", 650, {"Belfast", "Lisburn", "Ballymena", "Carrickfergus"}, {"BT"}},
	{"Warwickshire", 600, {"Warwick", "Nuneaton", "Rugby", "Leamington Spa"}, {"CV"}},
	{"Worcestershire", 600, {"Worcester", "Redditch", "Kidderminster", "Malvern"}, {"WR"}},
	{"East Riding of Yorkshire", 600, {"Hull", "Beverley", "Bridlington", "Goole"},
	 {"HU", "YO"}},
	{"Grampian", 590, {"Aberdeen", "Elgin", "Peterhead", "Inverurie"}, {"AB"}},
	{"Gwent", 580, {"Newport", "Cwmbran", "Abergavenny", "Monmouth"}, {"NP"}},
	{"Cornwall", 570, {"Truro", "Falmouth", "Penzance", "St Austell", "Newquay"}, {"TR", "PL"}},
	{"County Down", 560, {"Newry", "Downpatrick", "Newtownards", "Banbridge"}, {"BT"}},
	{"Shropshire", 510, {"Shrewsbury", "Telford", "Oswestry", "Ludlow"}, {"SY", "TF"}},
	{"Cumbria", 500, {"Carlisle", "Kendal", "Barrow-in-Furness", "Whitehaven"}, {"CA", "LA"}},
	{"South Glamorgan", 500, {"Cardiff", "Barry", "Penarth"}, {"CF"}},
	{"Clwyd", 500, {"Wrexham", "Rhyl", "Mold", "Prestatyn"}, {"LL", "CH"}},
	{"Bristol", 470, {"Bristol"}, {"BS"}},
	{"Mid Glamorgan", 420, {"Bridgend", "Merthyr Tydfil", "Pontypridd", "Caerphilly"}, {"CF"}},
	{"Tayside", 420, {"Dundee", "Perth", "Arbroath", "Forfar"}, {"DD", "PH"}},
	{"Dyfed", 390, {"Carmarthen", "Llanelli", "Aberystwyth", "Haverfordwest"}, {"SA"}},
	{"Fife", 370, {"Dunfermline", "Kirkcaldy", "St Andrews", "Glenrothes"}, {"KY"}},
	{"West Glamorgan", 370, {"Swansea", "Neath", "Port Talbot"}, {"SA"}},
	{"Northumberland", 320, {"Morpeth", "Hexham", "Alnwick", "Berwick-upon-Tweed"},
	 {"NE", "TD"}},
	{"Central", 310, {"Stirling", "Falkirk", "Alloa", "Grangemouth"}, {"FK"}},
	{"County Londonderry", 250, {"Derry", "Coleraine", "Limavady", "Magherafelt"}, {"BT"}},
	{"Gwynedd", 250, {"Bangor", "Caernarfon", "Holyhead", "Pwllheli"}, {"LL"}},
	{"Highland", 235, {"Inverness", "Fort William", "Thurso", "Nairn"}, {"IV", "KW", "PH"}},
	{"County Armagh", 190, {"Armagh", "Craigavon", "Lurgan", "Portadown"}, {"BT"}},
	{"Herefordshire", 190, {"Hereford", "Leominster", "Ross-on-Wye", "Ledbury"}, {"HR"}},
	{"County Tyrone", 180, {"Omagh", "Dungannon", "Strabane", "Cookstown"}, {"BT"}},
	{"Dumfries and Galloway", 150, {"Dumfries", "Stranraer", "Castle Douglas"}, {"DG"}},
	{"Isle of Wight", 140, {"Newport", "Ryde", "Cowes", "Sandown"}, {"PO"}},
	{"Powys", 133, {"Newtown", "Brecon", "Llandrindod Wells", "Welshpool"}, {"LD", "SY"}},
	{"Borders", 115, {"Galashiels", "Hawick", "Peebles", "Kelso"}, {"TD"}},
	{"County Fermanagh", 63, {"Enniskillen", "Lisnaskea", "Irvinestown"}, {"BT"}},
	{"Rutland", 41, {"Oakham", "Uppingham"}, {"LE"}},
	{"Western Isles", 27, {"Stornoway", "Tarbert"}, {"HS"}},
	{"Shetland", 23, {"Lerwick", "Scalloway"}, {"ZE"}},
	{"Orkney", 22, {"Kirkwall", "Stromness"}, {"KW"}},
};
const size_t tally__gen_ncounties = sizeof(tally__gen_counties) / sizeof(tally__gen_counties[0]);

WORDS(region_prefixes, "North", "South", "East", "West", "Mid", "Central", "Upper", "Lower",
      "Inner", "Outer", "North East", "North West", "South East", "South West");

WORDS(male_names, "Oliver", "George", "Harry", "Jack", "Jacob", "Noah", "Charlie", "Thomas",
      "Oscar", "William", "James", "Henry", "Leo", "Alfie", "Joshua", "Freddie", "Archie",
      "Ethan", "Isaac", "Alexander", "Joseph", "Edward", "Samuel", "Max", "Daniel", "Arthur",
      "Lucas", "Mohammed", "Logan", "Theo", "Harrison", "Benjamin", "Mason", "Sebastian",
      "Finley", "Adam", "Dylan", "Zachary", "Riley", "Teddy", "Theodore", "David", "Elijah",
      "Jake", "Toby", "Louie", "Reuben", "Arlo", "Hugo", "Jaxon", "Luca", "Matthew", "Harvey",
      "Reggie", "Michael", "Tommy", "Jenson", "Ronnie", "Stanley", "Gabriel", "Liam", "Callum",
      "Rhys", "Owen", "Dafydd", "Ewan", "Angus", "Seamus", "Connor", "Kieran", "Gareth",
      "Nigel", "Graham", "Keith", "Trevor", "Colin", "Derek", "Ian", "Stuart", "Neil");

WORDS(female_names, "Olivia", "Amelia", "Isla", "Ava", "Emily", "Isabella", "Mia", "Poppy",
      "Ella", "Lily", "Evie", "Sophia", "Grace", "Ivy", "Freya", "Harper", "Charlotte",
      "Florence", "Sophie", "Willow", "Daisy", "Alice", "Rosie", "Sienna", "Phoebe", "Matilda",
      "Elsie", "Ruby", "Evelyn", "Millie", "Sofia", "Esme", "Emilia", "Eva", "Maya", "Imogen",
      "Lucy", "Jessica", "Hannah", "Chloe", "Eleanor", "Holly", "Megan", "Bethany", "Rebecca",
      "Catherine", "Margaret", "Susan", "Patricia", "Elizabeth", "Helen", "Karen", "Julie",
      "Deborah", "Sarah", "Rachel", "Gemma", "Kirsty", "Siobhan", "Niamh", "Aoife", "Cerys",
      "Ffion", "Eilidh", "Morag", "Fiona", "Gwen", "Tracy", "Janet", "Carol", "Lorraine",
      "Beverley", "Sandra", "Joanne", "Claire", "Louise", "Amanda", "Victoria", "Natalie");

WORDS(surnames, "Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson",
      "Thomas", "Johnson", "Roberts", "Robinson", "Thompson", "Wright", "Walker", "White",
      "Edwards", "Hughes", "Green", "Hall", "Lewis", "Harris", "Clarke", "Patel", "Jackson",
      "Wood", "Turner", "Martin", "Cooper", "Hill", "Ward", "Morris", "Moore", "Clark", "Lee",
      "King", "Baker", "Harrison", "Morgan", "Allen", "James", "Scott", "Phillips", "Watson",
      "Davis", "Parker", "Price", "Bennett", "Young", "Griffiths", "Mitchell", "Kelly", "Cook",
      "Carter", "Richardson", "Bailey", "Collins", "Bell", "Shaw", "Murphy", "Miller", "Cox",
      "Richards", "Khan", "Marshall", "Anderson", "Simpson", "Ellis", "Adams", "Singh",
      "Begum", "Wilkinson", "Foster", "Chapman", "Powell", "Webb", "Rogers", "Gray", "Mason",
      "Ali", "Hunt", "Hussain", "Campbell", "Matthews", "Owen", "Palmer", "Holmes", "Mills",
      "Barnes", "Knight", "Lloyd", "Butler", "Russell", "Barker", "Fisher", "Stevens",
      "Jenkins", "Murray", "Dixon", "Harvey", "Graham", "Pearson", "Ahmed", "Fletcher",
      "Walsh", "Kaur", "Gibson", "Howard", "Andrews", "Stewart", "Elliott", "Reynolds",
      "Saunders", "Payne", "Fox", "Ford", "Pearce", "Day", "Brooks", "West", "Lawrence",
      "Cole", "Atkinson", "Bradley", "Spencer", "Gill", "Dawson", "Ball", "Burton", "O'Brien",
      "Watts", "Rose", "Booth", "Perry", "Ryan", "Grant", "Wells", "Armstrong", "Francis",
      "Rees", "Hayes", "Hart", "Hudson", "Newman", "Barrett", "Webster", "Hunter", "Gregory",
      "Carr", "Lowe", "Page", "Marsh", "Riley", "Dunn", "Woods", "Parsons", "Berry", "Stone",
      "Reid", "Holland", "Hawkins", "Harding", "Porter", "Robertson", "Newton", "Oliver",
      "Reed", "Kennedy", "Williamson", "Bird", "Gardner", "Shah", "Dean", "Lane", "Cooke",
      "Bates", "Henderson", "Parry", "Burgess", "Bishop", "Walton", "Burns", "Nicholson",
      "Shepherd", "Ross", "Cross", "Long", "Freeman", "Warren", "Nicholls", "Hamilton",
      "Byrne", "Sutton", "McDonald", "Yates", "Hodgson", "Robson", "Curtis", "Hopkins",
      "O'Connor", "Harper", "Coleman", "Watkins", "Moss", "McCarthy", "Chambers", "O'Neill",
      "Griffin", "Sharp", "Hardy", "Wheeler", "Potter", "Osborne", "Johnston", "Gordon",
      "Doyle", "Wallace", "George", "Jordan", "Hutchinson", "Rowe", "Burke", "May", "Pritchard",
      "Gilbert", "Willis", "Higgins", "Read", "Miles", "Stevenson", "Stephenson", "Hammond",
      "Arnold", "Buckley", "Walters", "Hewitt", "Barber", "Nelson", "Slater", "Austin",
      "Sullivan", "Whitehead", "Mann", "Frost", "Lambert", "Stephens", "Blake", "Akhtar",
      "Lynch", "Goodwin", "Barton", "Woodward", "Thomson", "Cunningham", "Quinn", "Barnett",
      "Baxter", "Bibi", "Clayton", "Nash", "Greenwood", "Jennings", "Holt", "Kemp", "Poole",
      "Gallagher", "Bond", "Stokes", "Tucker", "Davidson", "Fowler", "Heath", "Norman",
      "Middleton", "Lawson", "Banks", "French", "Stanley", "Jarvis", "Gibbs", "Ferguson",
      "Hayward", "Carroll", "Douglas", "Hicks", "Dennis", "Hussein", "Parkinson", "MacLeod",
      "Llewellyn", "Pugh", "Vaughan");

WORDS(user_adjectives, "purple", "blue", "red", "green", "yellow", "orange", "black", "white",
      "silver", "golden", "brown", "tiny", "small", "big", "heavy", "lazy", "happy", "sad",
      "angry", "crazy", "beautiful", "ticklish", "organic", "lucky", "brave", "quiet", "wild",
      "sleepy", "jolly", "shiny");

WORDS(user_animals, "lion", "tiger", "bear", "wolf", "fox", "rabbit", "swan", "duck", "goose",
      "owl", "eagle", "falcon", "sparrow", "peacock", "parrot", "penguin", "dolphin", "whale",
      "shark", "fish", "frog", "toad", "snake", "lizard", "tortoise", "koala", "panda",
      "zebra", "giraffe", "elephant", "leopard", "cat", "dog", "mouse", "rat", "butterfly",
      "ladybug", "bird", "gorilla", "ostrich", "meercat", "badger", "otter", "hedgehog");

WORDS(street_names, "Church", "High", "Station", "Victoria", "Main", "Park", "Mill", "London",
      "Queen's", "King's", "Green", "Manor", "Chester", "Grange", "New", "North", "South",
      "West", "School", "York", "Springfield", "Windsor", "Albert", "Alexander", "George",
      "Stanley", "Richmond", "Kingsway", "Highfield", "Orchard", "Meadow", "Broadway",
      "Mill Lane", "Cherry", "Elm", "Oak", "Ash", "Beech", "Willow", "Chestnut", "Hawthorn",
      "The Crescent", "Brook", "Castle", "Abbey", "Market", "Bridge", "Cromwell", "Nelson",
      "Wellington", "Denmark", "Stockport", "Dale", "Hillside", "Jubilee");

WORDS(street_types, "Road", "Street", "Lane", "Avenue", "Close", "Drive", "Way", "Crescent",
      "Gardens", "Place", "Terrace", "Grove");

WORDS(party_words, "Green", "Liberal", "Progressive", "Independent", "Workers'", "Heritage",
      "Unity", "Reform", "Democratic", "Coastal", "Northern", "Rural", "Civic", "People's",
      "Forward", "Common Ground", "Social", "Renewal", "Future", "Highland", "Valleys",
      "Islands", "Commonwealth", "Citizens'");

WORDS(party_kinds, "Party", "Alliance", "Movement", "Coalition", "Union", "League", "Front",
      "Congress", "Assembly", "Federation");

WORDS(professions, "teacher", "nurse", "engineer", "solicitor", "GP", "firefighter",
      "shopkeeper", "farmer", "accountant", "software developer", "union organiser",
      "charity director", "police officer", "barrister", "journalist", "social worker",
      "architect", "pharmacist", "small business owner", "paramedic", "lecturer", "vicar");

WORDS(policies, "lower council tax", "more GPs and shorter NHS waiting lists",
      "affordable homes for first-time buyers", "free broadband in every village",
      "safer streets and more neighbourhood police", "cheaper rail fares",
      "an end to potholes", "green jobs in every region", "better pay for carers",
      "smaller class sizes", "a digital public service", "support for high streets",
      "clean rivers and beaches", "free school meals for all", "reliable buses",
      "faster planning for local businesses", "more apprenticeships",
      "a fair deal for farmers", "open government data", "investment in coastal towns");

const char *const tally__gen_original_parties[3] = {
	"Management Party",
	"Savior Party",
	"Tech Republic Party",
};
